from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.strategies import DDPStrategy

from cellseg.cli import main
from cellseg.data.synthetic import SyntheticConfig, write_dataset
from cellseg.inference.model import load_model
from cellseg.training.cli import DEFAULT_CHANNELS, network_total_stride, run_fit
from cellseg.training.module import SegmentationModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fit_data")
    write_dataset(folder, 4, SyntheticConfig(shape=(64, 64), n_nuclei=(3, 6)), seed=0, layout="cellpose")
    return folder


def fit_arguments(dataset: Path, runs: Path, *extra: str) -> list[str]:
    return [
        "--config", str(CONFIGS / "demo.yaml"),
        "--data.data_dir", str(dataset), "--data.patch_size", "[32, 32]", "--data.patches_per_epoch", "8",
        "--data.batch_size", "4", "--data.validation_fraction", "0.25",
        "--model.network", '{"channels": [4, 8]}',
        "--trainer.default_root_dir", str(runs), "--trainer.enable_progress_bar", "false",
        "--trainer.logger", "false", *extra,
    ]  # fmt: skip


def test_fit_from_the_command_line_saves_a_self_describing_checkpoint(dataset: Path, tmp_path: Path) -> None:
    arguments = fit_arguments(dataset, tmp_path, "--trainer.max_epochs", "1", "--model.foreground_threshold", "0.7")
    assert main(["fit", *arguments]) == 0
    best = next((tmp_path / "checkpoints").glob("best-*.ckpt"))
    checkpoint = torch.load(best, weights_only=True, map_location="cpu")
    hyperparameters = checkpoint["hyper_parameters"]
    assert hyperparameters["patch_size"] == [32, 32]  # linked from the data section
    assert hyperparameters["network"]["channels"] == [4, 8]
    assert (tmp_path / "last.ckpt").exists() or (tmp_path / "checkpoints" / "last.ckpt").exists()
    data_hyperparameters = checkpoint["datamodule_hyper_parameters"]
    assert data_hyperparameters["in_channels"] == 1  # linked from the network
    assert data_hyperparameters["size_divisor"] == 2
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["model"]["network"] == {"channels": [4, 8]}
    split = json.loads((tmp_path / "split.json").read_text())
    assert len(split["train"]) == 3
    assert len(split["validation"]) == 1
    # the training masks' median object diameter, stored for the post-processing to scale to
    from cellseg.data.object_size import median_object_diameter
    from cellseg.io import discover_pairs, read_mask

    pairs = discover_pairs(dataset).by_name
    measured = median_object_diameter(read_mask(pairs[name].mask) for name in split["train"])
    assert measured is not None
    assert 4 < measured < 40
    assert split["object_diameter"] == pytest.approx(measured)
    assert hyperparameters["object_diameter"] == pytest.approx(measured)
    module = SegmentationModule.load_from_checkpoint(best, weights_only=True, map_location="cpu")
    assert module.network.channels == (4, 8)
    loaded = load_model(best)  # what cellseg predict does
    assert loaded.tile_size == (32, 32)
    assert loaded.output_names == ["background", "interior", "boundary", "distance"]
    assert loaded.object_diameter == pytest.approx(measured)
    assert hyperparameters["foreground_threshold"] == loaded.foreground_threshold == 0.7  # predict's default
    assert module.val_instances is not None
    assert module.val_instances.instances.foreground_cut() == 0.7  # and the validation's


def test_a_run_logs_to_csv_and_tensorboard_and_draws_its_curves(dataset: Path, tmp_path: Path) -> None:
    arguments = fit_arguments(dataset, tmp_path, "--trainer.max_epochs", "2")
    arguments.remove("--trainer.logger")
    arguments.remove("false")
    run_fit(arguments)
    assert (tmp_path / "lightning_logs" / "version_0" / "metrics.csv").exists()
    assert (tmp_path / "lightning_logs" / "version_0" / "learning_curves.png").exists()
    assert list((tmp_path / "tensorboard").glob("version_0/events.out.tfevents.*"))


def test_resume_from_last_continues_the_run(dataset: Path, tmp_path: Path) -> None:
    first = run_fit(fit_arguments(dataset, tmp_path, "--trainer.max_epochs", "1"))
    steps_after_one_epoch = first.trainer.global_step
    resumed = run_fit(fit_arguments(dataset, tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", "last"))
    assert resumed.trainer.current_epoch == 2
    assert resumed.trainer.global_step == 2 * steps_after_one_epoch


def test_configs_parse(tmp_path: Path) -> None:
    configs = sorted(CONFIGS.glob("*.yaml"))
    assert {c.name for c in configs} >= {"default.yaml", "demo.yaml", "dsb2018.yaml", "usiigaci.yaml"}
    for config in configs:
        with pytest.raises(SystemExit) as exit_info:
            run_fit(["--config", str(config), "--print_config"])
        assert exit_info.value.code == 0


def test_fit_trains_on_3d_volumes(tmp_path: Path) -> None:
    """The same pipeline on multi-page TIFF stacks, with anisotropic spacing, through configs/demo3d.yaml."""
    data = tmp_path / "volumes"
    write_dataset(data, 3, SyntheticConfig(shape=(16, 32, 32), spacing=(2.0, 1.0, 1.0), n_nuclei=(3, 5)), seed=0)
    cli = run_fit(
        [
            "--config", str(CONFIGS / "demo3d.yaml"), "--data.data_dir", str(data),
            "--data.patch_size", "[16, 32, 32]", "--data.patches_per_epoch", "4", "--data.validation_fraction", "0.34",
            "--model.network", '{"spatial_dims": 3, "channels": [4, 8]}',
            "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.max_epochs", "1",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
        ]
    )  # fmt: skip
    assert cli.model.network.spatial_dims == 3
    assert cli.datamodule.hparams["spatial_dims"] == 3  # linked from the network
    assert torch.isfinite(cli.trainer.callback_metrics["val/loss"])


def test_fit_runs_distributed_on_two_cpu_processes(dataset: Path, tmp_path: Path) -> None:
    """Lightning's DDP (gloo, 2 spawned CPU processes): the path a multi-GPU or multi-node run takes."""
    cli = run_fit(
        fit_arguments(
            dataset, tmp_path, "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu",
            "--trainer.devices", "2", "--trainer.strategy", "ddp_spawn",
        )
    )  # fmt: skip
    assert cli.trainer.world_size == 2
    assert isinstance(cli.trainer.strategy, DDPStrategy)
    assert next((tmp_path / "checkpoints").glob("best-*.ckpt")).exists()
    checkpoint = torch.load(next((tmp_path / "checkpoints").glob("best-*.ckpt")), weights_only=True)
    # 8 patches per epoch, batch 4, shared by 2 processes: one step each.
    assert checkpoint["global_step"] == 1


def test_the_data_is_padded_to_the_total_stride_of_a_space_folded_network() -> None:
    assert network_total_stride({"channels": [16, 32, 64, 128]}) == 8
    assert network_total_stride({"channels": [16, 32, 64, 128], "fold": 2}) == 16
    assert network_total_stride(None) == 2 ** (len(DEFAULT_CHANNELS) - 1)


def test_a_weight_average_from_the_config_is_what_the_checkpoints_and_the_trained_model_hold(
    dataset: Path, tmp_path: Path
) -> None:
    """Lightning's EMAWeightAveraging, added through the config's callbacks as configs/dsb2018_ema.yaml adds it.

    The checkpoints keep the average as their weights (and the raw weights apart), ``cellseg predict`` loads them
    safely, and fit ends on the average.
    """
    ema = '{"class_path": "lightning.pytorch.callbacks.EMAWeightAveraging", "init_args": {"decay": 0.5}}'
    arguments = fit_arguments(dataset, tmp_path, "--trainer.max_epochs", "2", "--trainer.callbacks+", ema)
    cli = run_fit(arguments)
    last = tmp_path / "checkpoints" / "last.ckpt"
    if not last.exists():
        last = tmp_path / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True, map_location="cpu")
    averaged, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    weights = [name for name in averaged if name.startswith("network.") and averaged[name].is_floating_point()]
    assert weights
    assert any(not torch.equal(averaged[name], current[name]) for name in weights)  # an average, not the last step
    trained = cli.model.state_dict()
    assert all(torch.equal(trained[name].cpu(), averaged[name]) for name in weights)  # fit ends on the average
    loaded = load_model(last)  # what cellseg predict does: weights_only
    assert loaded.tile_size == (32, 32)
    configured = yaml.safe_load((CONFIGS / "dsb2018_ema.yaml").read_text())["trainer"]["callbacks"]
    assert [callback["class_path"] for callback in configured] == ["lightning.pytorch.callbacks.EMAWeightAveraging"]
