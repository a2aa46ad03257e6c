"""Witness and strain scalers: numpy parity, state, export."""

import numpy as np
import pytest
import torch

from deepclean_engine import ChannelStandardScaler, StrainScaler


class ScaledModel(torch.nn.Module):
    """Scale witnesses -> conv -> unscale strain, as an exported model."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.witness_scaler = ChannelStandardScaler(num_channels)
        self.network = torch.nn.Conv1d(num_channels, 1, 5, padding=2)
        self.strain_scaler = StrainScaler()

    def forward(self, witnesses: torch.Tensor) -> torch.Tensor:
        scaled = self.witness_scaler(witnesses)
        return self.strain_scaler(self.network(scaled)[:, 0], inverse=True)


def witness_data(num_channels: int = 3, size: int = 2000) -> torch.Tensor:
    offsets = torch.arange(num_channels, dtype=torch.float64)[:, None]
    return 10 * offsets + (offsets + 1) * torch.randn(num_channels, size)


class TestChannelStandardScaler:
    def test_matches_numpy(self) -> None:
        data = witness_data()
        scaler = ChannelStandardScaler(3)
        scaler.fit(data)
        x = witness_data(size=100)[None].float()
        expected = (x.numpy() - data.numpy().mean(-1, keepdims=True)) / (
            data.numpy().std(-1, keepdims=True)
        )
        np.testing.assert_allclose(
            scaler(x).numpy(), expected, rtol=1e-5, atol=1e-5
        )

    def test_state_dict_round_trip_and_dtype(self) -> None:
        scaler = ChannelStandardScaler(3)
        scaler.fit(witness_data())
        copy = ChannelStandardScaler(3)
        copy.load_state_dict(scaler.state_dict())
        torch.testing.assert_close(copy.mean, scaler.mean)
        torch.testing.assert_close(copy.std, scaler.std)
        double = copy.to(torch.float64)
        x = witness_data(size=50)[None]
        assert double(x).dtype == torch.float64

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (torch.ones(3, 100), r"channels \[0, 1, 2\] are constant"),
            (torch.randn(2, 100), r"shape \(3, time\)"),
        ],
    )
    def test_bad_fit_data(self, data: torch.Tensor, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            ChannelStandardScaler(3).fit(data)

    def test_nan_names_channel(self) -> None:
        data = witness_data()
        data[1, 7] = float("nan")
        with pytest.raises(ValueError, match=r"NaN or inf in channels \[1\]"):
            ChannelStandardScaler(3).fit(data)


class TestStrainScaler:
    def test_scale_and_inverse(self) -> None:
        strain = 1e-21 * torch.randn(4096, dtype=torch.float64)
        scaler = StrainScaler()
        scaler.fit(strain)
        assert float(scaler.scale) == pytest.approx(
            strain.numpy().std(), rel=1e-6
        )
        scaled = scaler(strain.float())
        assert 0.9 < float(scaled.std()) < 1.1
        torch.testing.assert_close(
            scaler(scaled, inverse=True).double(), strain, rtol=1e-5, atol=0
        )

    def test_constant_strain_is_refused(self) -> None:
        with pytest.raises(ValueError, match="constant"):
            StrainScaler().fit(torch.zeros(100))


class TestExport:
    def fitted_model(self) -> ScaledModel:
        model = ScaledModel(3).eval()
        model.witness_scaler.fit(witness_data())
        model.strain_scaler.fit(1e-21 * torch.randn(1000))
        return model

    def test_torch_export_keeps_fitted_buffers(self) -> None:
        model = self.fitted_model()
        x = witness_data(size=64)[None].float().repeat(2, 1, 1)
        exported = torch.export.export(model, (x,)).module()
        torch.testing.assert_close(exported(x), model(x), rtol=1e-6, atol=0)
