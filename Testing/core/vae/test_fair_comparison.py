"""A fair HVAE / Langevin-VAE comparison: one step rule for both flows, the thesis's
architecture beside the small one, and a protocol that pairs the models over seeds."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cochleaai.bench import vae_mnist
from cochleaai.vae.compare import paired_difference
from cochleaai.vae.configs import ARCHITECTURES, STEP_INIT, STEP_RANGE, mnist_model_config, volume_model_config
from cochleaai.vae.data import VolumeGrid
from cochleaai.vae.models import build_model
from cochleaai.vae.train import TrainConfig, seeded_model, start_output_bias, train

MNIST = Path(__file__).resolve().parents[3] / vae_mnist.DATA


@pytest.mark.parametrize("make", [lambda kind: mnist_model_config(kind, 3),
                                  lambda kind: volume_model_config(kind, 2, VolumeGrid((8, 8, 10), 0.5))])
def test_both_flows_share_one_step_rule_by_default(make):
    """The damping (with its noise, and the order of the step) is the only difference between
    HVAE and Langevin VAE (thesis Table 4.3)."""
    hvae, lvae = make("hvae").flow(), make("lvae").flow()
    assert hvae["step_mode"] == lvae["step_mode"] == "learned"
    assert {k: v for k, v in lvae.items() if k not in ("nu", "noise", "integrator")} == hvae
    hvae_model, lvae_model = build_model(make("hvae")), build_model(make("lvae"))
    for model in (hvae_model, lvae_model):
        assert model.step_size.raw.requires_grad
    torch.testing.assert_close(hvae_model.step_size(0, 1), lvae_model.step_size(0, 1))


def test_image_flows_start_at_the_shared_step():
    model = build_model(mnist_model_config("lvae", 2, latent=4))
    steps = model.step_size(0, 1)
    assert (STEP_RANGE[0], STEP_INIT) == (0.01, 0.2)
    torch.testing.assert_close(steps, torch.full_like(steps, STEP_INIT), atol=1e-6, rtol=0)


def test_volume_flows_start_near_the_top_of_their_range():
    """Started near 0.001 the learned steps hardly move in a short training; both flows start
    at 0.8 of the upper end (0.04 of [0.001, 0.05])."""
    for kind in ("hvae", "lvae"):
        model = build_model(volume_model_config(kind, 2, VolumeGrid((8, 8, 10), 0.5)))
        steps = model.step_size(0, 1)
        torch.testing.assert_close(steps, torch.full_like(steps, 0.04), atol=1e-6, rtol=0)


def test_random_steps_remain_an_ablation_for_both():
    for kind in ("hvae", "lvae"):
        model = build_model(mnist_model_config(kind, 2, latent=4, step_mode="random"))
        assert model.config()["flow"]["step_mode"] == "random" and not model.step_size.raw.requires_grad
    with pytest.raises(ValueError, match="step mode"):
        mnist_model_config("hvae", 2, step_mode="sometimes")


def test_thesis_architecture_has_its_layers_and_starts_at_the_average_logit():
    config = mnist_model_config("hvae", 2, latent=8, architecture="thesis")
    model = build_model(config)
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5)] * 3 and [c.out_channels for c in convs] == [16, 32, 32]
    assert model.encoder.head[1].out_features == 450
    assert isinstance(model.encoder.features[1], torch.nn.Softplus)
    with torch.no_grad():
        assert model.decoder(torch.zeros(2, 8)).shape == (2, 1, 28, 28)
    images = torch.rand(50, 1, 28, 28) ** 3
    assert start_output_bias(model, images)
    expected = torch.logit(images.mean(0).clamp(1e-3, 1 - 1e-3))
    torch.testing.assert_close(model.decoder.output_bias.detach(), expected)
    # the record builds the same networks again, and an older record (no kernel, no bias) still loads
    assert build_model(model.config()).config() == model.config()
    old = mnist_model_config("vae", 2, latent=8).as_dict()
    old["network"] = {k: v for k, v in old["network"].items() if k not in ("kernel", "output_bias")}
    assert build_model(old).decoder.output_bias is None
    assert ARCHITECTURES["thesis"]["optimizer"] == {"optimizer": "adamax", "lr": 5e-4, "eps": 1e-7}


def test_training_starts_the_bias_and_uses_the_optimiser_epsilon():
    torch.manual_seed(0)
    model = build_model(mnist_model_config("vae", 1, latent=2, architecture="thesis"))
    images = torch.rand(8, 1, 28, 28)
    result = train(model, images, None, TrainConfig(epochs=1, batch_size=8, optimizer="adamax", lr=0.0,
                                                     eps=1e-7, dynamic_binarization=True))
    assert result["config"]["eps"] == 1e-7
    # lr = 0: what the bias holds is where training started it
    torch.testing.assert_close(model.decoder.output_bias.detach(),
                               torch.logit(images.mean(0).clamp(1e-3, 1 - 1e-3)))


def test_langevin_in_the_leapfrog_order_without_damping_is_the_hvae():
    """lvae_kdk differs from the HVAE by the damping and the noise alone: with nu = 0 the same
    weights and draws give the same sample and weight."""
    hvae = seeded_model(mnist_model_config("hvae", 2), 0)
    lvae = build_model(mnist_model_config("lvae", 2, nu=0.0, integrator="kdk"))
    lvae.load_state_dict(hvae.state_dict())
    x = torch.bernoulli(torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    a = hvae.sample_posterior(x, torch.Generator().manual_seed(3))
    b = lvae.sample_posterior(x, torch.Generator().manual_seed(3))
    for key in ("z", "log_w", "objective"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    damped = build_model(mnist_model_config("lvae", 2, nu=0.01, integrator="kdk"))
    damped.load_state_dict(hvae.state_dict())
    assert not torch.equal(damped.sample_posterior(x, torch.Generator().manual_seed(3))["z"], a["z"])
    assert damped.config()["flow"]["integrator"] == "kdk"
    with pytest.raises(ValueError, match="integrator"):
        build_model(mnist_model_config("lvae", 2, integrator="leapfrog"))


def test_paired_difference_interval_is_the_student_t_one():
    out = paired_difference([3.0, 4.0, 5.0], [1.0, 1.0, 1.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)           # t(0.975, 2) * sd / sqrt(n)
    assert out["mean"] == pytest.approx(3.0) and out["n"] == 3
    assert out["interval"] == pytest.approx([3.0 - half, 3.0 + half])
    assert paired_difference([1.0], [0.5])["interval"] is None


def test_summary_pairs_hvae_and_lvae_by_seed_and_gives_a_verdict():
    def record(model, K, seed, nll):
        return {"model": model, "K": K, "seed": seed, "nll": nll, "elbo": -nll - 5, "train_seconds": 1.0,
                "eval_seconds": 1.0, "best_epoch": 1, "nll_per_item": [nll] * 4}
    records = [record("vae", 0, s, 100.0 + s) for s in range(3)]
    records += [record("hvae", 2, s, 95.0 + s) for s in range(3)]
    records += [record("lvae", 2, s, 94.0 + s + 0.1 * s) for s in range(3)]
    figures = vae_mnist.summarise(records, (2,))
    assert figures["nll_K2"] == pytest.approx({"vae": 101.0, "hvae": 96.0, "lvae": 95.1})
    assert figures["hvae_minus_lvae_K2"] == pytest.approx(0.9)
    lo, hi = figures["hvae_minus_lvae_K2_ci95"]
    assert 0 < lo < 0.9 < hi and figures["verdict_K2"].startswith("LVAE better")
    assert figures["hvae_minus_lvae_K2_interval_over"] == "seeds"
    assert figures["lvae_minus_best_other_K2"] == pytest.approx(-0.9)
    assert len(figures["runs"]) == 9


def test_summary_pairs_hvae_with_the_lvae_of_equal_gradient_cost():
    """HVAE with K leapfrog steps takes K + 1 gradients: the LVAE with K + 1 steps costs as much."""
    def record(model, K, seed, nll):
        return {"model": model, "K": K, "seed": seed, "nll": nll, "elbo": -nll - 5, "train_seconds": 1.0,
                "eval_seconds": 1.0, "best_epoch": 1, "nll_per_item": [nll] * 4}
    records = [record("hvae", 2, s, 95.0 + s) for s in range(3)]
    records += [record("lvae", 3, s, 96.0 + s + 0.1 * s) for s in range(3)]
    records += [record("lvae_nu0", 3, s, 95.0 + s) for s in range(2)]
    figures = vae_mnist.summarise(records, (2, 3))
    assert figures["hvae_K2_minus_lvae_K3"] == pytest.approx(-1.1)
    lo, hi = figures["hvae_K2_minus_lvae_K3_ci95"]
    assert lo < -1.1 < hi < 0
    assert figures["hvae_K2_minus_lvae_nu0_K3"] == pytest.approx(0.0)
    assert "hvae_minus_lvae_K3" not in figures and "hvae_K3_minus_lvae_K4" not in figures


@pytest.mark.skipif(not MNIST.is_file(), reason=f"MNIST not here ({vae_mnist.DATA})")
def test_models_and_steps_can_be_added_to_a_finished_protocol(tmp_path):
    """A run for another K or a subset of the models reuses every record it shares."""
    common = {"tiny": True, "data": str(MNIST), "out_dir": str(tmp_path)}
    before = torch.get_num_threads()
    try:
        vae_mnist.run(models=["vae", "hvae"], **common)
        runs = tmp_path / "vae-mnist-runs"
        assert sorted(p.name for p in runs.glob("*.json")) == ["small-learned-hvae-K2-seed0.json",
                                                               "small-learned-vae-K0-seed0.json"]
        stamps = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json")}
        vae_mnist.run(models=["lvae_nu0"], flow_steps=[3], **common)
        assert "small-learned-lvae_nu0-K3-seed0.json" in {p.name for p in runs.glob("*.json")}
        figures = vae_mnist.run(models=["vae", "hvae", "lvae_nu0"], flow_steps=[2, 3], **common)
        assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*.json") if p.name in stamps} == stamps
        # trains only what is missing: HVAE at K = 3 and the ablation at K = 2
        assert set(figures["nll_K3"]) == {"vae", "hvae", "lvae_nu0"} and len(figures["runs"]) == 5
        # a summary of what is there, training nothing
        names = {p.name for p in runs.glob("*.json")}
        summary = vae_mnist.run(no_train=True, flow_steps=[2, 3, 4], **common)
        assert {p.name for p in runs.glob("*.json")} == names and len(summary["runs"]) == len(names) == 5
        assert "nll_K4" in summary and set(summary["nll_K4"]) == {"vae"}
    finally:
        torch.set_num_threads(before)
    from cochleaai.errors import CochleaAIError
    with pytest.raises(CochleaAIError, match="Unknown model"):
        vae_mnist.run(models=["iwae"], **common)
    with pytest.raises(CochleaAIError, match="no record"):
        vae_mnist.run(no_train=True, **dict(common, out_dir=str(tmp_path / "empty")))


@pytest.mark.skipif(not MNIST.is_file(), reason=f"MNIST not here ({vae_mnist.DATA})")
def test_protocol_resumes_from_its_records_and_splits_into_shards(tmp_path):
    common = {"tiny": True, "data": str(MNIST), "out_dir": str(tmp_path)}
    before = torch.get_num_threads()
    try:
        part = vae_mnist.run(shard="1/2", **common)
        assert part["models_done"] == 2 and part["models_in_protocol"] == 4
        records = sorted(p.name for p in (tmp_path / "vae-mnist-runs").glob("*.json"))
        assert records == ["small-learned-lvae-K2-seed0.json", "small-learned-vae-K0-seed0.json"]
        vae_mnist.run(shard="2/2", **common)
        stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "vae-mnist-runs").glob("*.json")}
        assert len(stamps) == 4
        figures = vae_mnist.run(**common)                        # everything is there: summary only
        assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "vae-mnist-runs").glob("*.json")} == stamps
        assert set(figures["nll_K2"]) == {"vae", "hvae", "lvae", "lvae_nu0"}
        assert np.isfinite(figures["hvae_minus_lvae_K2"]) and len(figures["runs"]) == 4
        record = json.loads((tmp_path / "vae-mnist-runs" / "small-learned-lvae_nu0-K2-seed0.json").read_text())
        assert record["nu"] == 0.0 and record["settings"]["step_mode"] == "learned"
    finally:
        torch.set_num_threads(before)


def test_shard_needs_a_folder_and_a_valid_share():
    from cochleaai.errors import CochleaAIError

    for shard, message in (("1/2", "--out-dir"), ("3/2", "1 <= i <= n"), ("a/b", "i/n")):
        with pytest.raises(CochleaAIError, match=message):
            vae_mnist.run(tiny=True, data="x.npz", shard=shard, out_dir=None if shard == "1/2" else "/tmp")
