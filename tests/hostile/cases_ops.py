"""Hostile inputs of the dataset operations merge, split, filter, remap (issue 16), built with make_corpus's helpers."""

from __future__ import annotations

from collections.abc import Mapping

from hostile.make_corpus import OUT, Case, FileSpec, dataset, jsonl, manifest, record

_TWO = jsonl(record(), record(image="b.png"))


def _case(name: str, args: tuple[str, ...], files: Mapping[str, FileSpec], exit_code: int, fragment: str) -> Case:
    return Case(name, "ops", args, files, exit_code, fragment)


CASES: list[Case] = [
    _case("merge_missing_input", ("merge", "{root}/ds", "{root}/gone", "-o", OUT), dataset(), 2, "does not exist"),
    _case(
        "merge_duplicate_image",
        ("merge", "{root}/ds", "{root}/ds2", "-o", OUT),
        {**dataset(), "ds2/annonorm.json": manifest(image_root="../ds/images"), "ds2/train.jsonl": jsonl(record())},
        1,
        "duplicate image a.png",
    ),
    _case(
        "remap_map_unknown_classes",
        ("remap", "{root}/ds", "-o", OUT, "--map", "{root}/map.json"),
        {**dataset(), "map.json": '{"emu": "bird", "cat": "feline", "yak": null}'},
        2,
        "emu, yak",
    ),
    _case(
        "remap_map_not_an_object",
        ("remap", "{root}/ds", "-o", OUT, "--map", "{root}/map.json"),
        {**dataset(), "map.json": '["cat"]'},
        2,
        "expected a JSON object",
    ),
    _case(
        "remap_map_csv_three_columns",
        ("remap", "{root}/ds", "-o", OUT, "--map", "{root}/map.csv"),
        {**dataset(), "map.csv": "cat,feline,extra\n"},
        2,
        "row 1: expected two columns",
    ),
    _case(
        "split_ratios_not_summing_to_one",
        ("split", "{root}/ds", "-o", OUT, "--ratios", "train=0.7,val=0.7"),
        dataset(train=_TWO),
        2,
        "must sum to 1",
    ),
    _case(
        "split_ratio_garbage",
        ("split", "{root}/ds", "-o", OUT, "--ratios", "train=lots"),
        dataset(train=_TWO),
        2,
        "expected NAME=RATIO",
    ),
    _case(
        "split_ratio_with_no_image",
        ("split", "{root}/ds", "-o", OUT, "--ratios", "train=0.5,val=0.25,test=0.25"),
        dataset(train=_TWO),
        1,
        "would get no image",
    ),
    _case(
        "filter_unknown_class",
        ("filter", "{root}/ds", "-o", OUT, "--classes", "cat,emu"),
        dataset(),
        2,
        "emu",
    ),
    _case(
        "filter_broken_split_file",
        ("filter", "{root}/ds", "-o", OUT, "--drop-empty"),
        dataset(train='{"image": "a.png", "width": 8\n'),
        2,
        "not valid JSON",
    ),
]
