"""Typed YAML configuration: nesting, coercion, ``a.b=c`` overrides, and errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sjscc.common.config import ConfigError, apply_overrides, from_dict, load_config, to_yaml
from sjscc.common.model import ModelSpec


@dataclass
class Inner:
    lr: float = 0.1
    epochs: int = 3
    p_max: float | None = None


@dataclass
class Outer:
    name: str = "run"
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = field(default_factory=Inner)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    assert load_config(Outer, None) == Outer()


def test_yaml_fills_nested_dataclasses(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: cifar\nflag: true\nsizes: [4, 5, 6]\ninner:\n  lr: 1.0e-4\n  p_max: 0.3\n")
    config = load_config(Outer, path)
    assert config == Outer(name="cifar", flag=True, sizes=(4, 5, 6), inner=Inner(lr=1e-4, epochs=3, p_max=0.3))


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "inner:\n  lr: 0.5\n  epochs: 7\n")
    config = load_config(Outer, path, ["inner.lr=1e-4", "name=other", "flag=yes", "inner.p_max=0.25"])
    assert config.inner.lr == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string; the float field converts it
    assert config.inner.epochs == 7
    assert config.inner.p_max == 0.25
    assert config.name == "other" and config.flag is True


def test_override_to_null_and_into_missing_sections() -> None:
    data = apply_overrides({}, ["inner.p_max=0.3", "inner.epochs=9"])
    assert data == {"inner": {"p_max": 0.3, "epochs": 9}}
    assert from_dict(Outer, apply_overrides(data, ["inner.p_max=null"])).inner.p_max is None


def test_overrides_do_not_mutate_the_input() -> None:
    original = {"inner": {"lr": 0.5}}
    apply_overrides(original, ["inner.lr=0.1"])
    assert original == {"inner": {"lr": 0.5}}


def test_to_yaml_round_trip(tmp_path: Path) -> None:
    config = Outer(name="x", flag=True, sizes=(3,), inner=Inner(lr=0.25, epochs=2, p_max=None))
    assert load_config(Outer, _write(tmp_path, to_yaml(config))) == config


def test_model_spec_round_trip() -> None:
    spec = ModelSpec()
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_shipped_training_configs_load() -> None:
    from sjscc.training.config import TrainConfig

    folder = Path(__file__).resolve().parents[2] / "sjscc" / "training" / "configs"
    paths = sorted(folder.glob("*.yaml"))
    assert paths
    for path in paths:
        assert isinstance(load_config(TrainConfig, path), TrainConfig), path.name


# --- errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"colour": "red"}, r"config: unknown key\(s\) \['colour'\]; allowed: \['flag', 'inner', 'name', 'sizes'\]"),
        ({"inner": {"lr": "fast"}}, r"config\.inner\.lr: expected float, got 'fast'"),
        ({"inner": {"epochs": 3.5}}, r"config\.inner\.epochs: expected an integer, got 3\.5"),
        ({"inner": {"epochs": True}}, r"config\.inner\.epochs: expected int, got True"),
        ({"flag": "maybe"}, r"config\.flag: expected true/false, got 'maybe'"),
        ({"sizes": 3}, r"config\.sizes: expected a list, got 3"),
        ({"sizes": [1, "x"]}, r"config\.sizes\[1\]: expected int, got 'x'"),
        ({"inner": [1, 2]}, r"config\.inner: expected a mapping"),
        ({"inner": {"p_max": "high"}}, r"config\.inner\.p_max: expected float, got 'high'"),
        ({"name": None}, r"config\.name: expected str, got None"),
        ({"name": False}, r"config\.name: expected str, got False \(quote it if you meant the word\)"),
        ({"name": ["a"]}, r"config\.name: expected str, got \['a'\]"),
    ],
)
def test_bad_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_numbers_are_accepted_for_string_fields() -> None:
    assert from_dict(Outer, {"name": 7}).name == "7"


def test_bad_override_syntax() -> None:
    with pytest.raises(ConfigError, match=r"override 'inner\.lr' must look like key\.sub=value"):
        load_config(Outer, None, ["inner.lr"])
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['nope'\]"):
        load_config(Outer, None, ["inner.nope=1"])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config .*absent\.yaml"):
        load_config(Outer, tmp_path / "absent.yaml")


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(Outer, _write(tmp_path, "inner: [unclosed\n"))


def test_executable_yaml_tags_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(Outer, _write(tmp_path, "name: !!python/object/apply:os.getcwd []\n"))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a mapping at the top level"):
        load_config(Outer, _write(tmp_path, "- a\n- b\n"))


def test_model_spec_from_non_mapping() -> None:
    with pytest.raises(ConfigError, match="model: expected a mapping, got list"):
        ModelSpec.from_dict([1, 2])  # type: ignore[arg-type]
