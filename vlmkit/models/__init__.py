"""Models: the open_clip factory, bundled tiny configs, checkpoints, WiSE-FT."""

from .factory import BUNDLED, LoadedModel, list_models, load_model, save_model
from .stand_in import learned_temperature, stand_in, stand_in_record
from .wise import wise_ft

__all__ = ["BUNDLED", "LoadedModel", "list_models", "load_model", "save_model", "learned_temperature", "stand_in",
           "stand_in_record", "wise_ft"]
