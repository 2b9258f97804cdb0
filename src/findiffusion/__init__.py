"""findiffusion: denoising diffusion models of financial time series.

Quick start::

    import findiffusion
    returns, info = findiffusion.load_series("sp500")
    model = findiffusion.fit(returns)
    paths = model.sample(1000, 252, sampler="ddim", steps=50, seed=0)  # (1000, 252) log returns
    model.save("models/spx")
    model = findiffusion.load("models/spx")
"""

from findiffusion.config import from_dict, from_json, to_dict, to_json
from findiffusion.data import ReturnTransform, load_series, make_windows
from findiffusion.errors import InputError, ModelFileError
from findiffusion.model import DiffusionModel, returns_to_prices
from findiffusion.modelfile import load
from findiffusion.schedules import NoiseSchedule, ScheduleConfig
from findiffusion.training import FitConfig, TrainConfig, fit

__version__ = "0.1.0"

__all__ = [
    "DiffusionModel",
    "FitConfig",
    "InputError",
    "ModelFileError",
    "NoiseSchedule",
    "ReturnTransform",
    "ScheduleConfig",
    "TrainConfig",
    "fit",
    "from_dict",
    "from_json",
    "load",
    "load_series",
    "make_windows",
    "returns_to_prices",
    "to_dict",
    "to_json",
]
