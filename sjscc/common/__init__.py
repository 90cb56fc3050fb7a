"""The model and the bits: imported by device, edge and training, imports none of them."""
