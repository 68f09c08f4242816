"""``vecdb info``: what a collection holds, per-column statistics, its index and its size on disk."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .common import human_bytes, jsonable
from ..storage.manifest import FORMAT, FORMAT_VERSION, Manifest
from .output import align, cell, describe_index, write_text

EPILOG = """examples: from the repository root, after 'vecdb build --help's first example
  vecdb info scratch/arxiv.vdb
  vecdb info scratch/arxiv.vdb --format json | jq '.columns[] | select(.name == "year")'
"""

TOP_VALUES = 5


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("info", parents=parents, help="rows, dim, metric, columns with statistics, index, size",
                       description="Describe a collection: rows, dim, metric, schema with per-column statistics "
                                   "(nulls, min/max, distinct counts, top values), index, size on disk.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="PATH", nargs="?",
                   help="the collection directory (without it: what FAISS sees, GPUs and build)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(run=run)


def column_stats(column: pa.ChunkedArray) -> dict[str, Any]:
    """Nulls for every column; min/max for numbers and dates; distinct counts for strings;
    true/false counts for booleans; top values for lists of strings."""
    t = column.type
    stats: dict[str, Any] = {"type": str(t), "nulls": column.null_count}
    valid = len(column) - column.null_count
    if valid == 0:
        return stats
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_temporal(t):
        mm = pc.min_max(column)
        stats["min"], stats["max"] = jsonable(mm["min"].as_py()), jsonable(mm["max"].as_py())
    elif pa.types.is_boolean(t):
        true = int(pc.sum(column).as_py() or 0)
        stats["true"], stats["false"] = true, valid - true
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        stats["distinct"] = int(pc.count_distinct(column).as_py())
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        lengths = pc.list_value_length(column)
        stats["min_length"], stats["max_length"] = (int(v.as_py()) for v in pc.min_max(lengths).values())
        values = pc.list_flatten(column)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            counts = pc.value_counts(values).flatten()
            order = np.lexsort((np.arange(len(counts[0])), -counts[1].to_numpy()))[:TOP_VALUES]
            stats["distinct"] = len(counts[0])
            stats["top"] = [[counts[0][int(i)].as_py(), int(counts[1][int(i)].as_py())] for i in order]
    return stats


def _live_table(coll: Any) -> pa.Table:
    """The attributes of the rows not deleted."""
    return coll.to_arrow().drop_columns(["id"])


def _sizes(root: Path, manifest: Manifest) -> dict[str, int]:
    sizes = {"vectors": 0, "ids": 0, "attributes": 0, "index": 0, "attribute indexes": 0, "deletions": 0}
    for seg in manifest.segments:
        sizes["vectors"] += sum(e.bytes for files in seg.fields.values() for e in files.values())
        sizes["ids"] += seg.ids.bytes
        sizes["attributes"] += seg.attributes.bytes
    sizes["index"] = sum(e.bytes for e in manifest.index_files())
    names = manifest.files()
    sizes["attribute indexes"] = sum(os.stat(root / name).st_size for name in names if ".attr-" in name)
    if manifest.deleted:
        sizes["deletions"] = manifest.deleted.bytes
    sizes["total"] = sum(e.stat().st_size for e in os.scandir(root) if e.is_file())
    sizes["manifest and other"] = sizes["total"] - sum(v for k, v in sizes.items() if k != "total")
    return sizes


def describe(path: str) -> dict[str, Any]:
    """Everything ``info`` reports, as a JSON-ready dict."""
    import vecdb

    coll = vecdb.open(path)
    footprint = coll.footprint()  # before anything below reads the data
    manifest = coll.snapshot.manifest
    stored = manifest.stored_rows
    table = _live_table(coll)
    index = coll.index_info
    if index is not None and manifest.index.calibration:  # measured recall per ef, kept raw
        index = {**index, "calibration": dict(manifest.index.calibration)}
    return {
        "path": str(coll.root),
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": coll.version,
        "rows": len(coll),
        "stored_rows": stored,
        "deleted_rows": stored - len(coll),
        "segments": len(manifest.segments),
        "versions": [v["version"] for v in coll.versions()],
        "dim": manifest.dim if len(manifest.fields) == 1 else None,
        "metric": manifest.metric if len(manifest.fields) == 1 else None,
        "multivector": manifest.multivector if len(manifest.fields) == 1 else None,
        "index": index,
        "fields": [{"name": f.name, "dim": f.dim, "metric": f.metric, "multi": f.multi,
                    "indexes": [i for i in coll.indexes() if i["field"] == f.name]} for f in manifest.fields],
        "size_bytes": _sizes(coll.root, manifest),
        "footprint": footprint,  # on disk and resident by part, right after opening
        "columns": [{"name": name, **column_stats(table.column(name))} for name in coll.schema.names],
    }


def _stat_text(stats: dict[str, Any]) -> str:
    parts = []
    if "min" in stats:
        parts.append(f"min {cell(stats['min'], 32)}, max {cell(stats['max'], 32)}")
    if "true" in stats:
        parts.append(f"true {stats['true']:,}, false {stats['false']:,}")
    if "min_length" in stats:
        parts.append(f"length {stats['min_length']}..{stats['max_length']}")
    if "distinct" in stats:
        parts.append(f"{stats['distinct']:,} distinct")
    if "top" in stats:
        parts.append("top " + ", ".join(f"{cell(v, 24)} ({c:,})" for v, c in stats["top"]))
    return "; ".join(parts)


def _resident_text(foot: dict[str, Any]) -> str:
    parts = ", ".join(f"{k} {human_bytes(v['resident'])} of {human_bytes(v['on_disk'])}" for k, v in foot.items()
                      if k not in ("total", "process") and v["resident"] is not None and v["on_disk"])
    total = foot["total"]["resident"]
    return "unknown (no /proc/self/smaps)" if total is None else f"{human_bytes(total)} ({parts})"


def render_text(d: dict[str, Any]) -> str:
    size = d["size_bytes"]
    parts = ", ".join(f"{k} {human_bytes(v)}" for k, v in size.items() if k != "total" and v)
    lines = [
        f"collection: {d['path']}",
        f"format: {d['format']} version {d['format_version']} (collection version {d['version']})",
        f"rows: {d['rows']:,}" + (f" ({d['stored_rows']:,} stored, {d['deleted_rows']:,} deleted)"
                                  if d["deleted_rows"] else "") + f" in {d['segments']} segment(s)",
        f"versions kept: {', '.join(map(str, d['versions']))}",
        *_field_lines(d),
        f"size on disk: {human_bytes(size['total'])} ({parts})",
        *([f"devices: {render_devices(d['devices'])}"] if "devices" in d else []),
        f"resident after opening: {_resident_text(d['footprint'])}",
        f"columns ({len(d['columns'])}):",
    ]
    rows = [[c["name"], c["type"].replace("<element: ", "<"), f"{c['nulls']:,}", _stat_text(c)] for c in d["columns"]]
    text = "\n".join(lines) + "\n"
    return text + (align(["name", "type", "nulls", "statistics"], rows, indent="  ") if rows else "  (none)\n")


def _field_lines(d: dict[str, Any]) -> list[str]:
    """One field: dim, metric, index (as before fields existed); several: a line per field and index."""
    index = d["index"]
    if len(d["fields"]) == 1 and len(d["fields"][0]["indexes"]) <= 1:
        return [f"dim: {d['dim']}", f"metric: {d['metric']}",
                f"index: {describe_index(index)}" + ("" if index is None else
                                                     f", covers {index['rows']:,} rows, device {index['device']}")]
    lines = [f"vector fields ({len(d['fields'])}):"]
    for f in d["fields"]:
        lines.append(f"  {f['name']}: {'sets of ' if f['multi'] else ''}{f['dim']}-d vectors, metric {f['metric']}")
        for i in f["indexes"] or [{"name": None}]:
            lines.append("    index: (none, exact scans)" if i["name"] is None else
                         f"    index {i['name']}: {i['kind']} {i['config']}, covers {i['rows']:,} rows")
    return lines


def render_devices(d: dict[str, Any]) -> str:
    gpus = "; ".join(f"{g['id']}: {g.get('name', 'GPU')}" + (f" {g['memory_total_mib']:,} MiB" if "memory_total_mib" in g
                                                             else "") for g in d["gpus"]) or "none"
    return (f"faiss {d['faiss_version']} ({d['faiss_build']} build{', cuVS' if d['cuvs'] else ''}); GPUs: {gpus}; "
            f"device='auto' runs on the {d['auto_device'].upper()}"
            + ("; CAGRA available" if d["cagra"] else ""))


def run(args: argparse.Namespace) -> int:
    from ..indexes.device import device_info

    if args.path is None:
        info = device_info()
        write_text(json.dumps(info, indent=2) + "\n" if args.format == "json" else
                   f"devices: {render_devices(info)}\n", args.output)
        return 0
    d = describe(args.path)
    d["devices"] = device_info()
    write_text(json.dumps(d, indent=2) + "\n" if args.format == "json" else render_text(d), args.output)
    return 0
