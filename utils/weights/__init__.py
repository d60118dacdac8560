"""Readers of the official checkpoints, none of which needs the framework that wrote them: PyTorch ``.pth`` /
``.pkl`` files (torch_reader.py, a zip / legacy pickle reader) and MatConvNet ``.mat`` files (official.py)."""
from .official import READERS, convert_official, read_matconvnet_dae, read_torch_state_dict

__all__ = ["READERS", "convert_official", "read_matconvnet_dae", "read_torch_state_dict"]
