"""What a model's tokens cost: a per-model price table, with defaults and an optional file.

The table maps a model name, or a glob pattern such as ``llama3*``, to US dollars per million
prompt (``input``) and completion (``output``) tokens. A few hosted models are priced by
default; ``STEWARD_PRICING_FILE`` names a TOML or YAML file whose entries are added to the
defaults and override them::

    # pricing.toml: USD per million tokens
    [models."gpt-4o-mini"]
    input = 0.15
    output = 0.60

    [models."llama3*"]      # self-hosted: no per-token cost
    input = 0
    output = 0

Set ``replace_defaults = true`` at the top of the file to use only its entries. A model with
no price (a local model not listed) costs 0 and is logged once, so a missing price is visible
rather than silently making a run look free.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.errors import InvalidInput
from agent.tools.validation import compiled_validator

log = logging.getLogger(__name__)

PRICING_FILE_VARIABLE = "STEWARD_PRICING_FILE"


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per million prompt (``input``) and completion (``output``) tokens."""

    input_per_million: float
    output_per_million: float

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / 1_000_000


# OpenAI list prices (standard tier, uncached input) in April 2025. Check your provider's
# current prices and put yours in a pricing file: these are a starting point, not a quote.
DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4o-20*": ModelPrice(2.50, 10.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4o-mini-20*": ModelPrice(0.15, 0.60),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-20*": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-mini-20*": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-4.1-nano-20*": ModelPrice(0.10, 0.40),
    "o3-mini": ModelPrice(1.10, 4.40),
    "o4-mini": ModelPrice(1.10, 4.40),
}

_PRICE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["input", "output"],
    "properties": {
        "input": {"type": "number", "minimum": 0},
        "output": {"type": "number", "minimum": 0},
    },
}
_FILE_SCHEMA = compiled_validator(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["models"],
        "properties": {
            "replace_defaults": {"type": "boolean"},
            "models": {
                "type": "object",
                "propertyNames": {"minLength": 1, "maxLength": 200},
                "additionalProperties": _PRICE,
            },
        },
    }
)


class PriceTable:
    """Prices by model name or glob pattern; the exact name wins, then the longest pattern."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self.prices = dict(prices)
        self._unpriced_logged: set[str] = set()

    def price_for(self, model: str) -> ModelPrice | None:
        """The price of ``model``, or None when neither its name nor a pattern is listed."""
        if model in self.prices:
            return self.prices[model]
        matches = [p for p in self.prices if fnmatch.fnmatchcase(model, p)]
        return self.prices[max(matches, key=len)] if matches else None

    def cost_usd(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """The cost of one model call in US dollars; 0 for a model without a price."""
        price = self.price_for(model)
        if price is None:
            if (prompt_tokens or completion_tokens) and model not in self._unpriced_logged:
                self._unpriced_logged.add(model)
                log.info(
                    "no price for model %r: its tokens are counted at $0 (add it to the file "
                    "named by %s)",
                    model,
                    PRICING_FILE_VARIABLE,
                )
            return 0.0
        return price.cost_usd(prompt_tokens, completion_tokens)

    @classmethod
    def from_document(cls, document: Any, *, source: str = "the pricing document") -> PriceTable:
        """A table from a parsed pricing file: its entries over the defaults.

        Raises:
            InvalidInput: the document does not have the shape shown in the module docstring.
        """
        error = next(iter(_FILE_SCHEMA.iter_errors(document)), None)
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "the top level"
            raise InvalidInput(f"{source}: {where}: {error.message}")
        prices: dict[str, ModelPrice] = (
            {} if document.get("replace_defaults") else dict(DEFAULT_PRICES)
        )
        for model, entry in document["models"].items():
            prices[model] = ModelPrice(float(entry["input"]), float(entry["output"]))
        return cls(prices)


def load_price_table(path: Path) -> PriceTable:
    """Read a pricing file: TOML when it ends in ``.toml``, YAML otherwise.

    Raises:
        InvalidInput: the file cannot be read or parsed, or has the wrong shape.
    """
    try:
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(
            f"the pricing file {path} ({PRICING_FILE_VARIABLE}) cannot be read: {exc}"
        ) from exc
    return PriceTable.from_document(document, source=f"the pricing file {path}")


_lock = threading.Lock()
_cached: tuple[tuple[str, float], PriceTable] | None = None


def price_table(environ: Mapping[str, str] | None = None) -> PriceTable:
    """The table in effect: the defaults, plus ``STEWARD_PRICING_FILE`` when it is set.

    The file is read again when its modification time changes, so prices can be corrected
    without restarting workers.

    Raises:
        InvalidInput: the pricing file cannot be read or is malformed.
    """
    global _cached  # noqa: PLW0603 - one table per process, reloaded when the file changes
    env = os.environ if environ is None else environ
    raw = env.get(PRICING_FILE_VARIABLE, "").strip()
    path = Path(raw) if raw else None
    try:
        key = (raw, path.stat().st_mtime if path is not None else 0.0)
    except OSError as exc:
        raise InvalidInput(
            f"the pricing file {raw} named by {PRICING_FILE_VARIABLE} cannot be read: {exc}"
        ) from exc
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
    table = load_price_table(path) if path is not None else PriceTable(DEFAULT_PRICES)
    with _lock:
        _cached = (key, table)
    return table
