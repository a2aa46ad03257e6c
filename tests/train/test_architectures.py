"""Shapes, sizes and receptive fields of the DeepClean architectures."""

import functools

import pytest
import torch

from deepclean_train.architectures import (
    DeepCleanAutoencoder,
    DilatedUNet,
    Ensemble,
    ModulatedCarrier,
    architecture_name,
    assign_carrier,
    receptive_field,
)
from deepclean_train.predictor import NoisePredictor

NUM_CHANNELS = 21
SAMPLE_RATE = 4096


def count_parameters(network: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in network.parameters())


@pytest.mark.parametrize(
    "architecture",
    [
        DeepCleanAutoencoder,
        DilatedUNet,
        functools.partial(ModulatedCarrier, carrier_channel=0),
    ],
)
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


def single_path(network: ModulatedCarrier) -> ModulatedCarrier:
    """Zero every weight, then pass the carrier and the smoothed
    witnesses through unchanged (delta filters, identity normalisation):
    each modulation is then what its heads make of the witnesses at the
    same instant, times the carrier."""
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()
        network.smoothing.weight[:, 16] = 1.0
        network.carriers.weight[:, :, 16] = 1.0
        network.output_filters.weight[0, 16] = 1.0
        network.norm.weight.fill_(1.0)
        network.norm.running_var.fill_(1.0 - network.norm.eps)
    return network.eval()


class TestModulatedCarrier:
    def test_bilinear_and_quadratic_terms_are_products(self) -> None:
        network = single_path(ModulatedCarrier(4, carrier_channel=2))
        with torch.no_grad():
            network.linear_head.weight[0, 1, 0] = 0.5
            network.linear_head.bias[0] = 0.25
            network.left_head.weight[0, 0, 0] = 1.0
            network.right_head.weight[0, 3, 0] = 2.0
            x = torch.randn(2, 4, 256)
            expected = x[:, 2] * (
                0.5 * x[:, 1] + 0.25 + 2.0 * x[:, 0] * x[:, 3]
            )
            torch.testing.assert_close(network(x), expected)

    def test_relu_head_gives_rectified_motion(self) -> None:
        network = single_path(
            ModulatedCarrier(3, carrier_channel=0, hidden_channels=2)
        )
        first, second = network.relu_head[0], network.relu_head[2]
        with torch.no_grad():
            # |w| = relu(w) + relu(-w)
            first.weight[:, 1, 0] = torch.tensor([1.0, -1.0])
            second.weight[0, :, 0] = 1.0
            x = torch.randn(2, 3, 128)
            torch.testing.assert_close(network(x), x[:, 0] * x[:, 1].abs())

    def test_channel_head_sees_one_witness_per_unit(self) -> None:
        """Each witness's own units see that witness alone: the units of
        witness 1 rectify it, and witness 2 does not reach them."""
        network = single_path(
            ModulatedCarrier(3, carrier_channel=0, hidden_per_channel=2)
        )
        first, second = network.channel_head[0], network.channel_head[2]
        assert first.weight.shape == (6, 1, 1)
        with torch.no_grad():
            # units 2 and 3 belong to witness 1: |w| = relu(w) + relu(-w)
            first.weight[2:4, 0, 0] = torch.tensor([1.0, -1.0])
            second.weight[0, 2:4, 0] = 1.0
            x = torch.randn(2, 3, 128)
            expected = x[:, 0] * x[:, 1].abs()
            torch.testing.assert_close(network(x), expected)
            x[:, 2] = 100.0
            torch.testing.assert_close(network(x), expected)

    def test_channel_head_can_be_left_out(self) -> None:
        network = ModulatedCarrier(
            NUM_CHANNELS + 2, carrier_channel=0, hidden_per_channel=0
        )
        assert network.channel_head is None
        assert count_parameters(network) == 5_606
        predictor = NoisePredictor(network, NUM_CHANNELS + 2, 16).eval()
        x = torch.randn(1, NUM_CHANNELS + 2, 4096)
        with torch.no_grad():
            torch.testing.assert_close(
                torch.jit.script(predictor)(x), predictor(x)
            )
        with pytest.raises(ValueError, match="hidden_per_channel must be"):
            ModulatedCarrier(3, hidden_per_channel=-1)

    @pytest.mark.parametrize("length", [5, 64, 301])
    def test_fft_filters_are_the_convolutions(self, length: int) -> None:
        """The FFT filters give what zero-padded Conv1d layers give
        (with the taps flipped: Conv1d correlates), at any length."""
        network = ModulatedCarrier(3, carrier_channel=0, output_taps=9)
        x = torch.randn(2, 3, length, dtype=torch.float64)
        smoothing = network.smoothing.weight.detach().double()
        expected = torch.nn.functional.conv1d(
            x, smoothing.flip(-1)[:, None], padding=16, groups=3
        )
        torch.testing.assert_close(
            network.smoothing.double()(x), expected, rtol=0, atol=1e-12
        )
        mixed = torch.randn(2, 16, length, dtype=torch.float64)
        summed = network.output_filters.double()
        expected = torch.nn.functional.conv1d(
            mixed, summed.weight.flip(-1)[None], summed.bias[None], padding=4
        )[:, 0]
        torch.testing.assert_close(summed(mixed), expected, rtol=0, atol=1e-12)

    def test_smoothing_starts_as_a_low_pass(self) -> None:
        taps = ModulatedCarrier(3).smoothing.weight.detach()
        assert taps.shape == (3, 33)
        # 256 Hz network rate: the motions below 8 Hz pass, the 60 Hz
        # line does not reach the modulations
        gain = torch.fft.rfft(taps.double(), n=256).abs()
        torch.testing.assert_close(
            gain[:, 0], torch.ones(3, dtype=torch.float64)
        )
        assert gain[:, 8].min() > 0.85
        assert gain[:, 60].max() < 1e-3

    def test_receptive_field(self) -> None:
        network = ModulatedCarrier(NUM_CHANNELS + 2, carrier_channel=0)
        assert receptive_field(network, NUM_CHANNELS + 2, 1024) == 65
        assert count_parameters(network) == 7_278

    def test_ensemble_members_share_the_low_pass_start(self) -> None:
        ensemble = Ensemble(ModulatedCarrier(3), 2)
        first, second = ensemble.members
        torch.testing.assert_close(
            first.smoothing.weight, second.smoothing.weight
        )
        assert not torch.equal(
            first.linear_head.weight, second.linear_head.weight
        )

    def test_exports_with_the_predictor(self) -> None:
        network = ModulatedCarrier(NUM_CHANNELS, carrier_channel=4)
        predictor = NoisePredictor(network, NUM_CHANNELS, 16).eval()
        scripted = torch.jit.script(predictor)
        x = torch.randn(1, NUM_CHANNELS, 4096)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), predictor(x))

    def test_bad_settings_are_refused(self) -> None:
        with pytest.raises(ValueError, match="carrier_channel 3 is not"):
            ModulatedCarrier(3, carrier_channel=3)
        with pytest.raises(ValueError, match="smoothing_cutoff 0.5"):
            ModulatedCarrier(3, smoothing_cutoff=0.5)
        with pytest.raises(ValueError, match="kernel_size must be odd"):
            ModulatedCarrier(3, carrier_taps=32)

    def test_a_carrier_is_needed(self) -> None:
        with pytest.raises(ValueError, match="no carrier channel"):
            ModulatedCarrier(3)(torch.randn(1, 3, 64))


class TestAssignCarrier:
    WITNESSES = ("H1:ASC-A", "H1:PEM-MAINS", "H1:ASC-B")

    def test_every_member_takes_the_line_witness(self) -> None:
        network = Ensemble(ModulatedCarrier(3), 2)
        assign_carrier(network, self.WITNESSES, "H1:PEM-MAINS")
        assert [m.carrier_channel for m in network.members] == [1, 1]

    def test_other_architectures_need_no_line_witness(self) -> None:
        network = DeepCleanAutoencoder(3)
        assign_carrier(network, self.WITNESSES, None)

    @pytest.mark.parametrize(
        ("carrier", "line_witness", "message"),
        [
            (None, None, "name it with --model.line_witness"),
            (None, "H1:PEM-OTHER", "'H1:PEM-OTHER' is not among"),
            (
                0,
                "H1:PEM-MAINS",
                "carrier_channel 0 is 'H1:ASC-A', not the line witness "
                r"'H1:PEM-MAINS' \(channel 1\); leave "
                "model.arch.init_args.carrier_channel unset",
            ),
        ],
    )
    def test_refusals(
        self, carrier: int | None, line_witness: str | None, message: str
    ) -> None:
        network = ModulatedCarrier(3, carrier_channel=carrier)
        with pytest.raises(ValueError, match=message):
            assign_carrier(network, self.WITNESSES, line_witness)
