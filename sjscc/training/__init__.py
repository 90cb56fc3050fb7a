"""Training and evaluation: data, the three training steps, sweeps, plots and bundle export."""
