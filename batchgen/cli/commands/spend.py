"""`batchgen spend` and `batchgen ledger rebuild`: the money ledger, read and rebuilt."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchgen.cli.common import EXIT_USAGE, flags_of
from batchgen.cli.spend import LEDGER_READS, READS
from batchgen.errors import UsageError
from batchgen.money.ledger import ALL, ENV, NANO, Ledger, ledger_path, month_of, month_start
from batchgen.money.monthly import load_user_config
from batchgen.session.ledgering import rebuild


def _open(given: str | None, *, create: bool = False) -> Any:
    """The ledger to read. One named by --ledger, the environment or config.toml must exist
    (a typo is an error, not "$0 spent"); the default one is made empty on first use."""
    user = load_user_config()
    if given is None and os.environ.get(ENV) is None:
        given = user.ledger
    named = given is not None or os.environ.get(ENV) is not None
    path = ledger_path(given)
    if path is None:
        raise UsageError(f"the spend ledger is off (--ledger off or {ENV}=off): nothing to show")
    return Ledger.open(path, create=create or not named), user


def _since(text: str | None) -> float:
    if text is None:
        return month_start(time.time())
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise UsageError(f"--since {text!r}: give a UTC date like 2026-12-01 (or 2026-12-01T08:00)")


def spend_document(args: argparse.Namespace) -> dict[str, Any]:
    ledger, user = _open(args.ledger)
    try:
        since = _since(args.since)
        lines = ledger.spend(since=since, by=args.by, project=args.project)
        total = ledger.spend(since=since, project=args.project)
        month = month_of(time.time())
        budgets = []
        cap = args.monthly_budget if args.monthly_budget is not None else user.monthly_budget
        scopes: list[tuple[str, float]] = [] if cap is None else [(ALL, cap)]
        for name, usd in user.project_budgets.items():
            if args.project in (None, name):
                scopes.append((name, usd))
        for scope, usd in scopes:
            spent = ledger.spent_nano(month, scope) / NANO
            left = max(usd - spent, 0.0)
            budgets.append(
                {
                    "scope": "all projects" if scope == ALL else f"project {scope}",
                    "month": month,
                    "budget_usd": usd,
                    "spent_usd": round(spent, 6),
                    "remaining_usd": round(left, 6),
                    "remaining_share": round(left / usd, 4) if usd > 0 else 0.0,
                }
            )
    finally:
        ledger.close()
    empty = {"key": "total", "attempts": 0, "images": 0, "cost_usd": 0.0, "cost_per_image": None}
    return {
        "ledger": str(ledger.path),
        "since": datetime.fromtimestamp(since, UTC).isoformat(),
        "by": args.by,
        "project": args.project,
        "lines": [_line(line) for line in lines] if args.by else [],
        "total": _line(total[0]) if total else empty,
        "budgets": budgets,
    }


def _line(line: Any) -> dict[str, Any]:
    per = line.per_image
    return {
        "key": line.key,
        "attempts": line.attempts,
        "images": line.images,
        "cost_usd": round(line.cost_usd, 9),
        "cost_per_image": None if per is None else round(per, 9),
    }


def cmd_spend(args: argparse.Namespace) -> int:
    flags_of(args, READS)  # the parser offers only what is read here
    try:
        doc = spend_document(args)
    except UsageError as exc:
        print(f"batchgen spend: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(doc, indent=2))
        return 0
    print(_text(doc))
    return 0


def _money(usd: float) -> str:
    return f"${usd:,.4f}" if usd < 1 else f"${usd:,.2f}"


def _text(doc: dict[str, Any]) -> str:
    out = [f"spend since {doc['since'][:16].replace('T', ' ')} UTC  (ledger {doc['ledger']})"]
    rows = [*doc["lines"], doc["total"]] if doc["by"] else [doc["total"]]
    width = max(len(str(r["key"])) for r in rows) + 2
    out.append(
        f"  {doc['by'] or '':<{width}}{'attempts':>10}{'images':>10}{'cost':>14}{'per image':>12}"
    )
    for r in rows:
        per = "-" if r["cost_per_image"] is None else _money(r["cost_per_image"])
        out.append(
            f"  {r['key']:<{width}}{r['attempts']:>10,}{r['images']:>10,}"
            f"{_money(r['cost_usd']):>14}{per:>12}"
        )
    for b in doc["budgets"]:
        out.append(
            f"budget ({b['scope']}, {b['month']}): {_money(b['spent_usd'])} of "
            f"{_money(b['budget_usd'])} spent, {_money(b['remaining_usd'])} left "
            f"({b['remaining_share'] * 100:.0f} %)"
        )
    return "\n".join(out)


def cmd_rebuild(args: argparse.Namespace) -> int:
    flags_of(args, LEDGER_READS)  # the parser offers only what is read here
    try:
        ledger, _user = _open(args.ledger, create=True)
        try:
            done = rebuild(ledger, [Path(d) for d in args.run_dirs])
        finally:
            ledger.close()
    except UsageError as exc:
        print(f"batchgen ledger rebuild: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for run_dir, run_id, rows, cost in done:
        print(f"{run_dir}: run {run_id}: {rows} priced attempt(s), ${cost:.4f}")
    return 0
