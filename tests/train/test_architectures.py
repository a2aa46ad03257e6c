"""Shapes, sizes and receptive fields of the DeepClean architectures."""

import pytest
import torch

from deepclean_train.architectures import (
    DeepCleanAutoencoder,
    DilatedUNet,
    Ensemble,
    architecture_name,
    receptive_field,
)
from deepclean_train.predictor import NoisePredictor

NUM_CHANNELS = 21
SAMPLE_RATE = 4096


def count_parameters(network: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in network.parameters())


@pytest.mark.parametrize("architecture", [DeepCleanAutoencoder, DilatedUNet])
def test_output_shape(architecture: type[torch.nn.Module]) -> None:
    network = architecture(NUM_CHANNELS)
    prediction = network(torch.randn(3, NUM_CHANNELS, 512))
    assert prediction.shape == (3, 512)


def test_reference_parameter_count() -> None:
    network = DeepCleanAutoencoder(NUM_CHANNELS)
    # reference layout (42,553) with the last up block widened 1 -> 8
    # channels (+413) and the output convolution taking 8 channels (+49)
    assert count_parameters(network) == 42_553 + 413 + 49


def test_reference_has_no_single_channel_bottleneck() -> None:
    network = DeepCleanAutoencoder(NUM_CHANNELS)
    last_up = network.up[-1]
    assert last_up[0].out_channels == 8
    assert isinstance(network.output_conv, torch.nn.Conv1d)
    assert network.output_conv.in_channels == 8


def test_reference_receptive_field() -> None:
    network = DeepCleanAutoencoder(NUM_CHANNELS)
    assert receptive_field(network, NUM_CHANNELS, 2048) == 193


def test_dilated_receptive_field_reaches_half_a_second() -> None:
    network = DilatedUNet(NUM_CHANNELS)
    predictor = NoisePredictor(network, NUM_CHANNELS, 8)
    field = receptive_field(predictor, NUM_CHANNELS, 4 * SAMPLE_RATE)
    assert field >= SAMPLE_RATE / 2
    assert count_parameters(network) == 166_753


@pytest.mark.parametrize(("factor", "num_taps"), [(8, 163), (16, 323)])
def test_decimation_stretches_the_receptive_field(
    factor: int, num_taps: int
) -> None:
    network = DeepCleanAutoencoder(NUM_CHANNELS)
    predictor = NoisePredictor(network, NUM_CHANNELS, factor)
    field = receptive_field(predictor, NUM_CHANNELS, 4 * SAMPLE_RATE)
    # 193 samples at the network's rate, widened by the resampling filters
    assert factor * 193 <= field <= factor * 193 + 2 * num_taps


@pytest.mark.parametrize("architecture", [DeepCleanAutoencoder, DilatedUNet])
def test_bad_input_is_refused(architecture: type[torch.nn.Module]) -> None:
    network = architecture(NUM_CHANNELS)
    with pytest.raises(ValueError, match="downsampling factor 16"):
        network(torch.randn(1, NUM_CHANNELS, 500))
    with pytest.raises(ValueError, match=r"\(batch, 21, time\)"):
        network(torch.randn(1, 3, 512))


def test_even_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        DeepCleanAutoencoder(NUM_CHANNELS, kernel_size=6)


def test_ensemble_members_start_apart_and_average() -> None:
    ensemble = Ensemble(DeepCleanAutoencoder(NUM_CHANNELS), 3).eval()
    weights = [m.input_block[0].weight for m in ensemble.members]
    assert not torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[1], weights[2])
    x = torch.randn(2, NUM_CHANNELS, 512)
    with torch.no_grad():
        each = ensemble.members_forward(x)
        assert each.shape == (3, 2, 512)
        torch.testing.assert_close(ensemble(x), each.mean(dim=0))
        torch.testing.assert_close(each[1], ensemble.members[1](x))
    assert architecture_name(ensemble) == "DeepCleanAutoencoder x 3"


def test_ensemble_exports_with_the_predictor() -> None:
    """TorchScript: the online cleaner loads the scripted predictor."""
    ensemble = Ensemble(DilatedUNet(NUM_CHANNELS), 2)
    predictor = NoisePredictor(ensemble, NUM_CHANNELS, 8).eval()
    scripted = torch.jit.script(predictor)
    x = torch.randn(1, NUM_CHANNELS, 4096)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), predictor(x))


def test_ensemble_of_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 members"):
        Ensemble(DeepCleanAutoencoder(NUM_CHANNELS), 1)
