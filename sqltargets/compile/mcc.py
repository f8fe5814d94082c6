"""The built-in MCC catalog: named groups of ISO 18245 merchant category codes.

A target's ``mcc`` list mixes single codes (``5411``), ranges (``"5411-5499"``) and group
names (``grocery``). :func:`resolve` turns such a list into sorted, merged, inclusive code
ranges, which the compiler renders as ``mcc BETWEEN lo AND hi`` / ``IN (...)`` and the NumPy
reference checks with plain comparisons.

>>> resolve(["grocery"])[:2]
((5411, 5411), (5422, 5422))
>>> resolve([5411, "5412-5420", 5300])
((5300, 5300), (5411, 5420))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SpecIssue, did_you_mean


@dataclass(frozen=True)
class Group:
    """A named group of MCC codes and ranges."""

    name: str
    description: str
    codes: tuple[int | tuple[int, int], ...]

    def ranges(self) -> tuple[tuple[int, int], ...]:
        """The group's codes as inclusive ranges."""
        return tuple((c, c) if isinstance(c, int) else c for c in self.codes)


def _g(name: str, description: str, *codes: int | tuple[int, int]) -> Group:
    return Group(name, description, codes)


#: Named groups, from the ISO 18245 code list and the card networks' category tables.
CATALOG: dict[str, Group] = {
    g.name: g
    for g in [
        _g(
            "grocery",
            "Grocery stores, supermarkets and food stores",
            5411,
            5422,
            5441,
            5451,
            5462,
            5499,
        ),
        _g("restaurants", "Restaurants and eating places", 5811, 5812),
        _g("bars", "Bars, taverns, nightclubs", 5813),
        _g("fast_food", "Fast food restaurants", 5814),
        _g("drug_stores", "Drug stores and pharmacies", 5912, 5122),
        _g("fuel", "Service stations and fuel dealers", 5541, 5542, 5552, 5983),
        _g("airlines", "Airlines and air carriers", (3000, 3350), 4511),
        _g("car_rental", "Car rental agencies", (3351, 3500), 7512, 7513, 7519),
        _g("hotels", "Hotels, motels and resorts", (3501, 3999), 7011, 7012),
        _g(
            "travel",
            "Air, car rental, lodging, rail, bus, cruise and travel agencies",
            (3000, 3999),
            4111,
            4112,
            4131,
            4411,
            4511,
            4722,
            7011,
            7012,
            7512,
        ),
        _g("transit", "Commuter transport, taxis, tolls, parking", 4111, 4121, 4131, 4784, 7523),
        _g("rent", "Real estate agents and rentals", 6513, 7033),
        _g("utilities", "Electric, gas, water and sanitary utilities", 4900),
        _g("telecom", "Telecommunication, cable and internet services", 4812, 4814, 4816, 4899),
        _g(
            "clothing",
            "Clothing, shoe and accessory stores",
            5611,
            5621,
            5631,
            5641,
            5651,
            5655,
            5661,
            5681,
            5691,
            5697,
            5698,
            5699,
        ),
        _g(
            "electronics",
            "Electronics, computer and software stores",
            5045,
            5722,
            5732,
            5734,
            5946,
        ),
        _g("department_stores", "Department, discount and variety stores", 5300, 5310, 5311, 5331),
        _g("home", "Home improvement, hardware and furniture", 5200, 5211, 5251, 5261, 5712),
        _g("digital_goods", "Digital goods: media, games, apps", (5815, 5818)),
        _g(
            "entertainment",
            "Movies, theatre, sports, amusement and recreation",
            7832,
            7922,
            7929,
            7932,
            7933,
            7941,
            (7991, 7999),
        ),
        _g("health", "Doctors, dentists, hospitals and medical services", (8011, 8099)),
        _g("education", "Schools, colleges and training", (8211, 8299)),
        _g("cash", "ATM and manual cash disbursements", 6010, 6011),
        _g("financial", "Money transfer, securities, quasi-cash", 4829, 6012, 6051, 6211, 6540),
        _g("insurance", "Insurance sales and premiums", 6300, 6381, 6399),
        _g(
            "automotive",
            "Car dealers, parts, repair and washes",
            5511,
            5521,
            5531,
            5532,
            5533,
            7531,
            7534,
            7535,
            7538,
            7542,
            7549,
        ),
        _g("government", "Government services, taxes, fines", (9211, 9402)),
        _g("charity", "Charitable and social service organizations", 8398),
    ]
}

_RANGE = re.compile(r"^\s*(\d{1,4})\s*-\s*(\d{1,4})\s*$")
_CODE = re.compile(r"^\s*(\d{1,4})\s*$")


def normalize_group_name(name: str) -> str:
    """``"Drug Stores"`` and ``"drug-stores"`` both name ``drug_stores``.

    >>> normalize_group_name("Fast Food")
    'fast_food'
    """
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def parse_item(item: object, path: str) -> tuple[tuple[int, int], ...] | SpecIssue:
    """One entry of an ``mcc`` list as ranges, or the issue that makes it invalid."""
    allowed = "a 4-digit code (0-9999), a range like '5411-5499', or a group name"
    if isinstance(item, bool):
        return SpecIssue(path, f"{item!r} is not an MCC; expected {allowed}")
    if isinstance(item, int):
        if 0 <= item <= 9999:
            return ((item, item),)
        return SpecIssue(path, f"{item!r} is not an MCC code; codes are 0-9999")
    if isinstance(item, str):
        if m := _CODE.match(item):
            return ((int(m.group(1)), int(m.group(1))),)
        if m := _RANGE.match(item):
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                return SpecIssue(path, f"{item!r} is an empty range; write the low code first")
            return ((lo, hi),)
        key = normalize_group_name(item)
        if key in CATALOG:
            return CATALOG[key].ranges()
        return SpecIssue(
            path,
            f"{item!r} is not an MCC code, range or group; groups are: "
            f"{', '.join(CATALOG)}{did_you_mean(key, CATALOG)}",
        )
    return SpecIssue(path, f"{item!r} is not an MCC; expected {allowed}")


def merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sort and merge overlapping or touching inclusive ranges.

    >>> merge([(5, 9), (1, 2), (3, 4), (20, 20)])
    ((1, 9), (20, 20))
    """
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def resolve(items: list[object]) -> tuple[tuple[int, int], ...]:
    """Resolve an ``mcc`` list; raises :class:`~sqltargets.errors.SpecError` when invalid."""
    from ..errors import SpecError

    ranges: list[tuple[int, int]] = []
    issues = []
    for i, item in enumerate(items):
        r = parse_item(item, f"mcc[{i}]")
        if isinstance(r, SpecIssue):
            issues.append(r)
        else:
            ranges.extend(r)
    if issues:
        raise SpecError(issues)
    return merge(ranges)


def catalog_table() -> list[tuple[str, str, str]]:
    """Rows ``(name, codes, description)`` for ``sqltargets mcc``."""
    rows = []
    for g in CATALOG.values():
        codes = ", ".join(str(c) if isinstance(c, int) else f"{c[0]}-{c[1]}" for c in g.codes)
        rows.append((g.name, codes, g.description))
    return rows
