"""topictree_hf: diverse synthetic LLM training data from topic trees, shipped as Hugging Face datasets."""

from topictree_hf.config import Config, load_config
from topictree_hf.engines import ChatRequest, Completion, Engine, SamplingParams, create_engine
from topictree_hf.errors import TopicTreeError
from topictree_hf.provenance import __version__

__all__ = [
    "ChatRequest",
    "Completion",
    "Config",
    "Engine",
    "SamplingParams",
    "TopicTreeError",
    "__version__",
    "create_engine",
    "load_config",
]
