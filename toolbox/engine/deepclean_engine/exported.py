"""The exported model file shared by training, cleaning and the online
cleaner.

``model.pt`` is TorchScript in eval mode mapping raw witnesses
``(batch, channels, kernel)`` to predicted noise in strain units
``(batch, kernel)``. Its metadata (channel order, sample rate, bands, the
:class:`~deepclean_engine.CleaningConfig` as ``cleaning``, training span,
versions) is stored inside the file as the extra file ``metadata.json``.
Loading it needs torch only.
"""

import json
from pathlib import Path
from typing import Any

import torch

MODEL_NAME = "model.pt"
METADATA_NAME = "metadata.json"


def save_exported_model(
    module: torch.nn.Module, metadata: dict[str, Any], path: str | Path
) -> Path:
    """Script ``module`` in eval mode and save it with its metadata.

    Args:
        module: maps ``(batch, channels, kernel)`` witnesses to
            ``(batch, kernel)`` noise in strain units; left unchanged
            (a copy is scripted on the CPU).
        metadata: JSON-serialisable metadata (see the module docstring).
        path: destination ``model.pt``; ``model.json`` beside it receives
            the metadata too, for people and tools that do not load torch.

    Returns:
        ``path``.
    """
    import copy

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metadata, indent=2)
    scripted = torch.jit.script(copy.deepcopy(module).cpu().eval())
    torch.jit.save(scripted, str(path), _extra_files={METADATA_NAME: text})
    path.with_suffix(".json").write_text(text + "\n")
    return path


def load_exported_model(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported model and its metadata.

    Args:
        path: an exported ``model.pt``.
        device: device to load the model onto.

    Returns:
        ``(module, metadata)``: the module in eval mode and the metadata
        dictionary.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds no DeepClean metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"exported model {path} does not exist; pass the model.pt "
            "written by deepclean-train fit"
        )
    extra_files = {METADATA_NAME: ""}
    module = torch.jit.load(
        str(path), map_location=device, _extra_files=extra_files
    )
    if not extra_files[METADATA_NAME]:
        raise ValueError(
            f"{path} holds no {METADATA_NAME}; it was not exported by "
            "deepclean-train"
        )
    return module.eval(), json.loads(extra_files[METADATA_NAME])
