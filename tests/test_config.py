import pytest

from utils.config import ConfigError, apply_overrides, get_by_path, load_config, parse_value

YAML = """
name: demo
network:
  name: MIRNet_v2
  n_feat: 80
train:
  lr: 2e-4
  stages:
    - {iters: 10, batch: 8, patch: 128}
    - {iters: 20, batch: 4, patch: 160}
  flags: [a, b]
"""


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "cfg.yml"
    p.write_text(YAML)
    return str(p)


def test_load_parses_scientific_floats(cfg_file):
    cfg = load_config(cfg_file)
    assert cfg["train"]["lr"] == pytest.approx(2e-4) and isinstance(cfg["train"]["lr"], float)
    assert cfg["network"] == {"name": "MIRNet_v2", "n_feat": 80}


def test_overrides_are_yaml_literals(cfg_file):
    cfg = load_config(cfg_file, ["network.n_feat=16", "train.lr=1e-3", "train.stages.1.patch=192",
                                 "train.flags=[x, y, 3]", "name=other run", "+network.task=defocus_deblurring"])
    assert cfg["network"]["n_feat"] == 16
    assert cfg["train"]["lr"] == pytest.approx(1e-3)
    assert cfg["train"]["stages"][1]["patch"] == 192
    assert cfg["train"]["flags"] == ["x", "y", 3]
    assert cfg["name"] == "other run"
    assert cfg["network"]["task"] == "defocus_deblurring"


def test_unknown_key_is_refused_with_closest_match(cfg_file):
    with pytest.raises(ConfigError, match="did you mean 'network.n_feat'"):
        load_config(cfg_file, ["network.n_feats=16"])
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(cfg_file, ["train.stages.5.iters=1"])
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(cfg_file, ["network.n_feat"])


def test_overrides_do_not_mutate_input():
    base = {"a": {"b": 1}}
    out = apply_overrides(base, ["a.b=2"])
    assert base["a"]["b"] == 1 and out["a"]["b"] == 2
    assert get_by_path(out, "a.b") == 2 and get_by_path(out, "a.c", "dflt") == "dflt"


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yml"))
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(bad))
    scalar = tmp_path / "scalar.yml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(scalar))


def test_parse_value():
    assert parse_value("1e-6") == pytest.approx(1e-6)
    assert parse_value("true") is True and parse_value("null") is None
    assert parse_value("./data/x") == "./data/x"


def test_model_overrides_per_model():
    from utils.config import model_overrides

    got = model_overrides(["A.n_feat=16", "B.scale=1.5e-1", "A.bias=true"], ["A", "B", "C"])
    assert got == {"A": {"n_feat": 16, "bias": True}, "B": {"scale": 0.15}, "C": {}}
    for bad in ("n_feat=16", "D.n_feat=16", "A.n_feat", "A.=3"):
        with pytest.raises(ConfigError, match="must look like MODEL.key=value"):
            model_overrides([bad], ["A", "B", "C"])
