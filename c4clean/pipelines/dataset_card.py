"""The README.md dataset card of a `c4clean run` output: what the Hugging Face Hub and `datasets` read.

The YAML header lists the data files of every split (`configs` / `data_files`), so
`datasets.load_dataset(<output>)` and the Hub viewer load the folder as it is. Only shards with rows
are listed: `datasets` fails on an empty shard, and a split whose shards are all empty is left out.
English variants have one config (`default`: train, validation); mC4 has one config per language
(`de`: train = `de-*`, validation = `de-validation-*`), as the Hub's mC4 does, since `datasets` split
names cannot hold a `-`.

The body states the recipe, the counts per stage and per split, the licences of the lists the recipe
used, and how to cite C4.
"""

from __future__ import annotations

import json

from c4clean.cleaning.url import TRAIN, VALIDATION

VALIDATION_SUFFIX = "-" + VALIDATION

# The lists a recipe may have used, with their licences (see c4clean/cleaning/data/SOURCES.md).
_LIST_LICENCES = {
    "badwords": "LDNOOBW bad-words lists (English @ 25e679f, others @ 5faf2ba), CC-BY-4.0",
    "realnews": "RealNews domain list, rowanz/grover @ 38f7184, Apache-2.0",
    "punkt": "NLTK Punkt English sentence parameters (punkt_tab), Apache-2.0",
}

C4_CITATION = """@article{2019t5,
  author = {Colin Raffel and Noam Shazeer and Adam Roberts and Katherine Lee and Sharan Narang and
            Michael Matena and Yanqi Zhou and Wei Li and Peter J. Liu},
  title = {Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer},
  journal = {arXiv e-prints},
  year = {2019},
  archivePrefix = {arXiv},
  eprint = {1910.10683},
}"""

MC4_CITATION = """@inproceedings{xue-etal-2021-mt5,
  title = {mT5: A Massively Multilingual Pre-trained Text-to-Text Transformer},
  author = {Linting Xue and Noah Constant and Adam Roberts and Mihir Kale and Rami Al-Rfou and
            Aditya Siddhant and Aditya Barua and Colin Raffel},
  booktitle = {Proceedings of NAACL-HLT 2021},
  year = {2021},
  pages = {483--498},
}"""


def _configs(manifest: dict, data_dir: str) -> list[dict]:
    """[{config_name, data_files: [{split, path: [files]}]}] for the shards that have rows."""
    english = manifest["options"]["recipe"]["english_only"]
    files: dict[tuple[str, str], list[str]] = {}
    for shard in manifest["shards"]:
        if not shard["rows"]:
            continue
        split = shard["split"]
        if english:
            key = ("default", split)
        elif split.endswith(VALIDATION_SUFFIX):
            key = (split[: -len(VALIDATION_SUFFIX)], VALIDATION)
        else:
            key = (split, TRAIN)
        path = f"{data_dir}/{shard['file']}" if data_dir else shard["file"]
        files.setdefault(key, []).append(path)
    configs: dict[str, list[dict]] = {}
    for (config, split), paths in sorted(files.items(), key=lambda kv: (kv[0][0], kv[0][1] != TRAIN)):
        configs.setdefault(config, []).append({"split": split, "path": sorted(paths)})
    return [{"config_name": name, "data_files": data_files} for name, data_files in configs.items()]


def _yaml(configs: list[dict]) -> str:
    # JSON strings are valid YAML scalars: quoting every name keeps file names like `no-00000...` safe.
    lines = ["configs:"]
    for config in configs:
        lines.append(f"- config_name: {json.dumps(config['config_name'])}")
        lines.append("  data_files:")
        for entry in config["data_files"]:
            lines.append(f"  - split: {json.dumps(entry['split'])}")
            lines.append("    path:")
            lines.extend(f"    - {json.dumps(p)}" for p in entry["path"])
    return "\n".join(lines)


def _lists_used(manifest: dict) -> list[str]:
    options = manifest["options"]
    recipe = options["recipe"]
    used = []
    if recipe["clean"]:
        used.append(_LIST_LICENCES["punkt"])
    if recipe["badwords_fraction"] > 0:
        used.append(_LIST_LICENCES["badwords"])
    domains = options.get("domains")
    if recipe.get("realnews") and not domains:
        used.append(_LIST_LICENCES["realnews"])
    if domains:
        used.append(f"domain list `{domains}` (given by the user; its licence is the user's to state)")
    for path in options.get("webtext_urls") or ():
        used.append(f"URL list `{path}` (given by the user; its licence is the user's to state)")
    return used


def render(manifest: dict, stage_table: str, splits_table: str, data_dir: str) -> str:
    """The card's text: YAML header, recipe, counts, licences, citation."""
    options = manifest["options"]
    variant = manifest["variant"]
    multilingual = not options["recipe"]["english_only"]
    recipe = ", ".join(f"{k}={v}" for k, v in sorted(options["recipe"].items()))
    near = "on (threshold {})".format(options["near_dedup_threshold"]) if options["near_dedup"] else "off"
    inputs = manifest["inputs"]
    lists = _lists_used(manifest)
    parts = [
        "---\n" + _yaml(_configs(manifest, data_dir)) + "\n---",
        f"# C4-style corpus: `{variant}`, made by c4clean {manifest['versions'].get('c4clean')}",
        f"Cleaned from {len(inputs):,} Common Crawl WET file(s) with the TFDS c4 v3.1.0 recipe "
        f"(variant `{variant}`: {recipe}); MinHash near-dedup {near}"
        + (f"; language id {options.get('langid')}" if multilingual else "")
        + f". Shards: {manifest.get('format', 'arrow')} files in `{data_dir or '.'}/`, named "
        "`{split}-{i:05d}-of-{n:05d}`; `manifest.json` records every option, version, input and "
        "shard checksum, `stats.json` every counter.",
        "## Load it",
        '```python\nimport datasets\nds = datasets.load_dataset("path/to/this/folder"'
        + (', "en"' if multilingual else "")
        + ")\n```",
        "## Pages per stage",
        stage_table,
        "## Splits",
        splits_table,
        "Tokens are whitespace-separated words. Validation holds the pages whose md5(normalized URL) "
        "% 1000 == 0, as in C4.",
        "## Licences",
        "The text comes from Common Crawl: its use is subject to the Common Crawl terms of use "
        "(https://commoncrawl.org/terms-of-use) and to the rights of each page's authors. C4 itself "
        "is released under ODC-BY. The lists this recipe used:\n"
        + ("\n".join(f"- {item}" for item in lists) if lists else "- none"),
        "## Citation",
        "If you use this corpus, cite C4" + (" and mC4" if multilingual else "") + ":",
        "```bibtex\n" + C4_CITATION + ("\n\n" + MC4_CITATION if multilingual else "") + "\n```",
    ]
    return "\n\n".join(parts) + "\n"
