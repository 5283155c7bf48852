"""`batchgen models`: the price table's models and what an image costs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from batchgen.cli.common import flags_of
from batchgen.cli.models import READS
from batchgen.money.cost import image_usd
from batchgen.money.load import PricesError, load_prices
from batchgen.money.table import PriceTable
from batchgen.numbers import money, usd


def model_rows(prices: PriceTable, only: str | None = None) -> list[dict[str, Any]]:
    """One row per model: its billing, USD per image by quality and size (image output only:
    a token-billed model adds its prompt's input tokens), the Batch API's rate, as of when."""
    rows = []
    for name, entry in prices.models.items():
        if only is not None and name != only:
            continue
        row: dict[str, Any] = {
            "model": name,
            "billing": entry.billing,
            "as_of": entry.as_of,
            "batch_rate": entry.batch_rate,
        }
        if entry.billing == "chat":
            row["chat_usd_per_1m"] = {
                "input": money(entry.chat_input_per_1m),
                "output": money(entry.chat_output_per_1m),
            }
        else:
            row["usd_per_image"] = {
                q: {s: money(image_usd(prices, name, q, s)) for s in entry.known_sizes()}
                for q in entry.known_qualities()
            }
        rows.append(row)
    return rows


def cmd_models(args: argparse.Namespace) -> int:
    flags_of(args, READS)  # the parser offers only what is read here
    try:
        prices = load_prices(args.prices)
    except PricesError as exc:
        print(f"batchgen models: {exc}", file=sys.stderr)
        return 2
    rows = model_rows(prices, args.model)
    if args.model and not rows:
        known = ", ".join(prices.models)
        print(
            f"batchgen models: {args.model!r} is not in the price table (known: {known}); "
            "add it with --prices FILE",
            file=sys.stderr,
        )
        return 2
    if args.output_format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    _print_text(rows)
    return 0


def _print_text(rows: list[dict[str, Any]]) -> None:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    images = Table(title="Image models: USD per image", title_justify="left", box=box.SIMPLE_HEAD)
    images.add_column("model", overflow="fold", max_width=24)
    images.add_column("quality")
    images.add_column("per image, by size", no_wrap=True)
    images.add_column("batch", justify="right")
    images.add_column("as of")
    chats = Table(
        title="Judges (chat): USD per 1M tokens", title_justify="left", box=box.SIMPLE_HEAD
    )
    for col in ("model", "input", "output", "as of"):
        chats.add_column(col, justify="right" if col in ("input", "output") else "left")
    for row in rows:
        if row["billing"] == "chat":
            rates = row["chat_usd_per_1m"]
            chats.add_row(row["model"], usd(rates["input"]), usd(rates["output"]), row["as_of"])
            continue
        batch = f"{row['batch_rate']:.0%}" if row["batch_rate"] is not None else "-"
        for i, (quality, by_size) in enumerate(row["usd_per_image"].items()):
            sizes = " · ".join(
                f"{size if size != '*' else 'any'} {usd(v) if v is not None else '?'}"
                for size, v in by_size.items()
            )
            q = "any" if quality == "*" else quality
            images.add_row(
                row["model"] if i == 0 else "",
                q,
                sizes,
                batch if i == 0 else "",
                row["as_of"] if i == 0 else "",
            )
    if images.row_count:
        images.caption = "token-billed models (gpt-image-*) add the prompt's input tokens"
        console.print(images)
    if chats.row_count:
        console.print(chats)
