"""Hostile inputs of ``annonorm convert cvat``: each one line, exit 1 or 2, nothing written.

Built with the helpers of :mod:`hostile.make_corpus`; the lead wires :data:`CASES` into the corpus.
"""

from __future__ import annotations

from typing import Any

from hostile.make_corpus import OUT, Case, FileSpec, garbage, jpeg

META = (
    "<meta><task><mode>annotation</mode><labels>"
    "<label><name>cat</name><attributes><attribute><name>fat</name><input_type>checkbox</input_type>"
    "</attribute><attribute><name>age</name><input_type>number</input_type></attribute></attributes></label>"
    "</labels></task></meta>"
)
BOX = '<box label="cat" xtl="1" ytl="1" xbr="4" ybr="5"/>'


def cvat_xml(*shapes: str, image: str = 'id="0" name="a.jpg" width="8" height="6"', head: str = "") -> str:
    """A CVAT for images 1.1 file whose one image holds ``shapes``."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{head}<annotations><version>1.1</version>{META}'
        f"<image {image}>{''.join(shapes)}</image></annotations>"
    )


def video_xml(*shapes: str, label: str = "cat", frame_filter: str = "", stop: int = 3) -> str:
    """A CVAT for video 1.1 file of frames 0..``stop`` (8 x 6) whose one track holds ``shapes``."""
    task = (
        f"<meta><task><mode>interpolation</mode><start_frame>0</start_frame><stop_frame>{stop}</stop_frame>"
        f"<frame_filter>{frame_filter}</frame_filter><original_size><width>8</width><height>6</height>"
        "</original_size><labels><label><name>cat</name></label></labels></task></meta>"
    )
    track = f'<track id="0" label="{label}">{"".join(shapes)}</track>'
    return f"<annotations><version>1.1</version>{task}{track}</annotations>"


def cvat_case(name: str, data: FileSpec, exit_code: int, fragment: str, **kwargs: Any) -> Case:
    """A ``convert cvat`` case on ``{root}/src/annotations.xml`` with ``{root}/src/images/a.jpg``."""
    extra_args = tuple(kwargs.pop("args", ()))
    files = {"src/annotations.xml": data, "src/images/a.jpg": jpeg(), **kwargs.pop("files", {})}
    args = ("convert", "cvat", "{root}/src/annotations.xml", "-o", OUT, *extra_args)
    return Case(name, "cvat", args, files, exit_code, fragment, **kwargs)


BOMB = (
    '<!DOCTYPE annotations [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
)
XXE = '<!DOCTYPE annotations [<!ENTITY secret SYSTEM "file://{root}/outside/secret.txt">]>'

CASES: list[Case] = [
    cvat_case("cvat_empty_file", b"", 2, "expected the root element <annotations>"),
    cvat_case("cvat_binary_garbage", garbage(), 2, "expected the root element <annotations>"),
    cvat_case("cvat_truncated", cvat_xml(BOX)[:-40], 2, "not well-formed XML"),
    cvat_case("cvat_not_cvat", "<annotation><filename>a.jpg</filename></annotation>", 2, "not a CVAT XML export"),
    cvat_case("cvat_no_meta", "<annotations><version>1.1</version></annotations>", 2, "no <meta>"),
    cvat_case(
        "cvat_billion_laughs", cvat_xml('<box label="&d;" xtl="1" ytl="1" xbr="2" ybr="2"/>', head=BOMB), 2, "refused"
    ),
    cvat_case(
        "cvat_xxe_reads_local_file",
        cvat_xml('<box label="&secret;" xtl="1" ytl="1" xbr="2" ybr="2"/>', head=XXE),
        2,
        "refused",
        files={"outside/secret.txt": "TOP-SECRET-TOKEN"},
        absent=("TOP-SECRET-TOKEN",),
    ),
    cvat_case(
        "cvat_coordinate_not_a_number", cvat_xml('<box label="cat" xtl="abc" ytl="1" xbr="4" ybr="5"/>'), 1, "xtl"
    ),
    cvat_case("cvat_coordinate_nan", cvat_xml('<box label="cat" xtl="nan" ytl="1" xbr="4" ybr="5"/>'), 1, "finite"),
    cvat_case("cvat_coordinate_inf", cvat_xml('<box label="cat" xtl="1" ytl="1" xbr="inf" ybr="5"/>'), 1, "finite"),
    cvat_case("cvat_corners_swapped", cvat_xml('<box label="cat" xtl="5" ytl="1" xbr="4" ybr="5"/>'), 1, "xtl <= xbr"),
    cvat_case(
        "cvat_width_not_a_number", cvat_xml(BOX, image='id="0" name="a.jpg" width="wide" height="6"'), 1, "width"
    ),
    cvat_case("cvat_negative_height", cvat_xml(BOX, image='id="0" name="a.jpg" width="8" height="-6"'), 1, "height"),
    cvat_case("cvat_id_not_a_number", cvat_xml(BOX, image='id="x" name="a.jpg" width="8" height="6"'), 1, "id"),
    cvat_case("cvat_polygon_odd_points", cvat_xml('<polygon label="cat" points="1,2;3,4;5"/>'), 1, "'x,y' pairs"),
    cvat_case("cvat_polygon_two_points", cvat_xml('<polygon label="cat" points="1,2;3,4"/>'), 1, "at least 3 points"),
    cvat_case("cvat_polyline_one_point", cvat_xml('<polyline label="cat" points="1,2"/>'), 1, "at least 2 points"),
    cvat_case("cvat_points_empty", cvat_xml('<points label="cat" points=""/>'), 1, "'x,y' pairs"),
    cvat_case(
        "cvat_unknown_label",
        cvat_xml('<box label="dog" xtl="1" ytl="1" xbr="4" ybr="5"/>'),
        1,
        "label 'dog' is not one of the labels",
    ),
    cvat_case(
        "cvat_checkbox_not_a_bool",
        cvat_xml('<box label="cat" xtl="1" ytl="1" xbr="4" ybr="5"><attribute name="fat">maybe</attribute></box>'),
        1,
        "expected true or false",
    ),
    cvat_case(
        "cvat_number_attribute_nan",
        cvat_xml('<box label="cat" xtl="1" ytl="1" xbr="4" ybr="5"><attribute name="age">NaN</attribute></box>'),
        1,
        "expected a finite number",
    ),
    cvat_case(
        "cvat_occluded_not_a_flag",
        cvat_xml('<box label="cat" xtl="1" ytl="1" xbr="4" ybr="5" occluded="2"/>'),
        1,
        "occluded",
    ),
    cvat_case(
        "cvat_mask_runs_do_not_cover_window",
        cvat_xml('<mask label="cat" rle="1, 2" left="0" top="0" width="2" height="2"/>'),
        1,
        "the runs cover 3 pixels",
    ),
    cvat_case(
        "cvat_mask_window_outside_image",
        cvat_xml('<mask label="cat" rle="0, 4" left="7" top="0" width="2" height="2"/>'),
        1,
        "not inside the 8x6 image",
    ),
    cvat_case(
        "cvat_image_climbs_out",
        cvat_xml(BOX, image='id="0" name="../../etc/a.jpg" width="8" height="6"'),
        2,
        "must not climb out",
    ),
    cvat_case(
        "cvat_image_absolute",
        cvat_xml(BOX, image='id="0" name="/etc/a.jpg" width="8" height="6"'),
        2,
        "must be relative",
    ),
    cvat_case("cvat_unknown_shape", cvat_xml('<cuboid label="cat"/>'), 1, "<cuboid> is not read"),
    cvat_case(
        "cvat_bad_subset",
        cvat_xml(BOX, image='id="0" name="a.jpg" width="8" height="6" subset="my subset"'),
        1,
        "cannot be a split name",
    ),
    cvat_case(
        "cvat_image_listed_twice",
        cvat_xml(BOX).replace("</annotations>", '<image id="1" name="a.jpg" width="8" height="6"/></annotations>'),
        1,
        "expected each image once per split",
    ),
    cvat_case(
        "cvat_track_frame_not_a_number",
        video_xml('<box frame="x" outside="0" keyframe="1" xtl="1" ytl="1" xbr="2" ybr="2"/>'),
        1,
        "frame: expected a whole number",
    ),
    cvat_case(
        "cvat_track_unknown_label",
        video_xml('<box frame="0" outside="0" keyframe="1" xtl="1" ytl="1" xbr="2" ybr="2"/>', label="dog"),
        1,
        "label 'dog' is not one of the labels",
    ),
    cvat_case("cvat_track_frame_range_bomb", video_xml("", stop=10**12), 1, "at most 10000000 frames"),
    cvat_case(
        "cvat_mask_window_bomb",
        cvat_xml(
            '<mask label="cat" rle="0, 10000000000" left="0" top="0" width="100000" height="100000"/>',
            image='id="0" name="a.jpg" width="100000" height="100000"',
        ),
        1,
        "larger than 25000000",
    ),
    cvat_case("cvat_track_bad_frame_filter", video_xml("", frame_filter="every=2"), 1, "frame_filter"),
]
