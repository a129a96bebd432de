"""Course facts from one data file, checked when the book builds and rendered into its pages.

An instructor preparing a new offering edits ``book/_data/course.yml`` (offering name and
dates, meeting times and places, instructors, contact, lectures, assignments, the weekly
schedule) and nothing else. This extension:

- reads and checks the file at ``config-inited``, first its form against a JSON Schema
  (:data:`SCHEMA`: a missing or misspelt field, a date that is not ``YYYY-MM-DD``), then the
  course's rules (a lecture on the wrong weekday, dates out of order, an assignment released
  outside the offering); any problem stops the build with a ``ConfigError`` that names the file
  and each field by its path, such as ``schedule[3].date``;
- registers MyST substitutions, ``{{ course_name }}``, ``{{ course_lecture_time }}`` and so on
  (see :func:`substitutions`), for facts used in running text;
- adds directives that render the lists and tables: ``course-lectures`` (``:part: 1``),
  ``course-schedule`` (``:part: 1``), ``course-assignments`` and ``course-instructors``.

Links to chapters are ``{doc}`` cross-references. In a partial build (``scripts/build_pages.py``)
a chapter that the real ``_toc.yml`` lists but the build left out is shown as plain text
instead of a warning; in the full build every such link must resolve.

The file path can be changed with the Sphinx option ``course_data_file`` (relative to the book).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.errors import ConfigError
from sphinx.util import docname_join
from sphinx.util.docutils import SphinxDirective
from sphinx_external_toc.parsing import parse_toc_yaml

DEFAULT_FILE = "book/_data/course.yml"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
NO_LECTURE = "none"


class CourseDataError(ValueError):
    """The data file is unreadable or wrong; ``problems`` lists each one as 'field: what'."""

    def __init__(self, path: str, problems: list[str]):
        self.path, self.problems = path, problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{path}: {len(problems)} {noun} in the course data file:\n{lines}")


class _Loader(yaml.SafeLoader):
    """A YAML loader that keeps dates as text, so that the schema checks their form."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# --- The form of the file: a JSON Schema ---------------------------------------------------------


def _record(required: dict, optional: dict | None = None, **extra) -> dict:
    """An object with these fields and no others (a misspelt field is an error, not ignored)."""
    return {"type": "object", "required": list(required), "additionalProperties": False,
            "properties": {**required, **(optional or {})}, **extra}


def _list(item: dict) -> dict:
    return {"type": "array", "minItems": 1, "items": item}


TEXT = {"type": "string", "pattern": r"\S"}
DATE = {"type": "string", "format": "date"}
MEETING = _record({"day": {"enum": list(WEEKDAYS)}, "time": TEXT,
                   "minutes": {"type": "integer", "minimum": 1}, "place": TEXT})
SCHEMA = _record({
    "offering": _record({"name": TEXT, "start": DATE, "end": DATE, "timezone": TEXT},
                        {"description": TEXT, "registration": TEXT}),
    "meetings": _record({"lecture": MEETING, "office_hour": MEETING}),
    "instructors": _list(_record({"name": TEXT, "role": TEXT}, {"email": TEXT})),
    "contact": _record({"email": TEXT, "questions": TEXT}, {"issues": TEXT}),
    "origin": _record({key: TEXT for key in ("creator", "institution", "website", "offerings")}),
    "lectures": _list(_record({"id": TEXT, "part": {"enum": [1, 2]}, "title": TEXT,
                               "page": TEXT})),
    "assignments": _list(_record({key: TEXT for key in ("id", "title", "page", "after")}
                                 | {"release": DATE, "solutions": DATE})),
    # A week without a lecture says why in its note.
    "schedule": _list(_record({"date": DATE, "lecture": TEXT, "office_hour": TEXT}, {"note": TEXT},
                              **{"if": {"properties": {"lecture": {"const": NO_LECTURE}}},
                                 "then": {"required": ["note"]}})),
})
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def schema_problems(raw: Any) -> list[str]:
    """Each way ``raw`` departs from :data:`SCHEMA`, as 'field.path: what'."""
    hints = {"format": " (write dates as YYYY-MM-DD)", "pattern": " (expected some text)"}
    problems = []
    for error in VALIDATOR.iter_errors(raw):
        where = error.json_path.removeprefix("$").removeprefix(".") or "(file)"
        problems.append(f"{where}: {error.message}{hints.get(error.validator, '')}")
    return problems


# --- The course's rules: what a schema cannot say -------------------------------------------------


def _next_weekday(day: dt.date, weekday: str) -> dt.date:
    """The first ``weekday`` on or after ``day``."""
    return day + dt.timedelta(days=(WEEKDAYS.index(weekday) - day.weekday()) % 7)


def load(path: Path, root: Path | None = None) -> dict:
    """Read and check the course data file; raise :class:`CourseDataError` listing every problem.

    First the form (:data:`SCHEMA`), then the rules between fields: dates in order, on the
    meeting days and inside the offering, ids that exist, each lecture scheduled once, each page
    present (``root`` is the book's folder; the pages are not looked for if None).
    Returns the data with dates as :class:`datetime.date`, lectures as a dict by id, and each
    schedule row completed with its week number, part and office-hour date.
    """
    name = str(path)
    try:
        raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Loader)
    except OSError as exc:
        raise CourseDataError(name, [f"(file): cannot be read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        raise CourseDataError(name, [f"(file): not valid YAML: {exc}"]) from None
    problems = schema_problems(raw)
    if problems:
        raise CourseDataError(name, problems)

    def fail(where: str, what: str) -> None:
        problems.append(f"{where}: {what}")

    def page(where: str, docname: str) -> None:
        if root is not None and not (root / f"{docname}.md").is_file():
            fail(where, f"{docname}.md does not exist")

    offering = raw["offering"]
    start = offering["start"] = dt.date.fromisoformat(offering["start"])
    end = offering["end"] = dt.date.fromisoformat(offering["end"])
    if end < start:
        fail("offering.end", f"{end} is before offering.start {start}")

    lectures: dict[str, dict] = {}
    for i, lecture in enumerate(raw["lectures"]):
        if lecture["id"] in lectures:
            fail(f"lectures[{i}].id", f"{lecture['id']!r} is used twice")
        if lecture["id"] == NO_LECTURE:
            fail(f"lectures[{i}].id", f"{NO_LECTURE!r} is reserved for weeks without a lecture")
        page(f"lectures[{i}].page", lecture["page"])
        lectures[lecture["id"]] = lecture

    lecture_day = raw["meetings"]["lecture"]["day"]
    office_day = raw["meetings"]["office_hour"]["day"]
    schedule, lecture_dates, previous, part = [], {}, None, 1
    for i, item in enumerate(raw["schedule"]):
        where = f"schedule[{i}]."
        date = dt.date.fromisoformat(item["date"])
        row = {"week": i + 1, "date": date, "lecture": None, "note": item.get("note"),
               "office_hour": None, "office_hour_date": _next_weekday(date, office_day)}
        if item["office_hour"] != NO_LECTURE:
            row["office_hour"] = item["office_hour"]
            if row["office_hour_date"] > end:
                fail(f"{where}office_hour", f"{row['office_hour_date']} is after "
                                            f"offering.end {end}")
        lecture_id = item["lecture"]
        if lecture_id == NO_LECTURE:
            pass
        elif lecture_id not in lectures:
            fail(f"{where}lecture", f"{lecture_id!r} is not the id of any entry in lectures "
                                    f"(or {NO_LECTURE!r})")
        elif lecture_id in lecture_dates:
            fail(f"{where}lecture", f"{lecture_id!r} is scheduled twice")
        else:
            row["lecture"] = lectures[lecture_id]
            lecture_dates[lecture_id] = date
            part = row["lecture"]["part"]
        row["part"] = part
        if date.strftime("%A") != lecture_day:
            fail(f"{where}date", f"{date} is a {date:%A}, not a {lecture_day} "
                                 "(meetings.lecture.day)")
        if previous is not None and date <= previous:
            fail(f"{where}date", f"{date} is not after the previous week's {previous}")
        if not start <= date <= end:
            fail(f"{where}date", f"{date} is outside the offering ({start} to {end})")
        previous = date
        schedule.append(row)
    for lecture_id in lectures:
        if lecture_id not in lecture_dates:
            fail("schedule", f"lecture {lecture_id!r} is never scheduled")

    for i, task in enumerate(raw["assignments"]):
        where = f"assignments[{i}]."
        page(f"{where}page", task["page"])
        for key in ("release", "solutions"):
            day = task[key] = dt.date.fromisoformat(task[key])
            if not start <= day <= end:
                fail(f"{where}{key}", f"{day} is outside the offering ({start} to {end})")
        after = lecture_dates.get(task["after"])
        if task["after"] not in lectures:
            fail(f"{where}after", f"{task['after']!r} is not the id of any entry in lectures")
        elif after and task["release"] < after:
            fail(f"{where}release", f"{task['release']} is before lecture {task['after']} "
                                    f"({after})")
        if task["solutions"] <= task["release"]:
            fail(f"{where}solutions", f"{task['solutions']} is not after the release "
                                      f"{task['release']}")
    releases = [task["release"] for task in raw["assignments"]]
    if releases != sorted(releases):
        fail("assignments", "release dates are not in order")

    if problems:
        raise CourseDataError(name, problems)
    return {**raw, "lectures": lectures, "schedule": schedule}


# --- Formatting ----------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|{}#$])")


def escape(text: str) -> str:
    """Text shown as written in Markdown (placeholders such as <room> included)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def day_month(day: dt.date, year: bool = False) -> str:
    return f"{day:%a} {day.day} {day:%b}" + (f" {day.year}" if year else "")


def long_date(day: dt.date) -> str:
    return f"{day:%A} {day.day} {day:%B} {day.year}"


def _span(days: list[dt.date]) -> str:
    first, last = min(days), max(days)
    if first.year == last.year:
        return f"{first.day} {first:%B} to {last.day} {last:%B} {last.year}"
    return f"{first.day} {first:%B} {first.year} to {last.day} {last:%B} {last.year}"


def _url(value: str | None) -> str:
    if value and re.match(r"https?://\S+$", value):
        return f"<{value}>"
    return escape(value or "")


def substitutions(course: dict) -> dict[str, str]:
    """MyST substitutions for running text, as Markdown. All names start with ``course_``."""
    offering, meetings = course["offering"], course["meetings"]
    subs = {
        "course_name": escape(offering["name"]),
        "course_description": escape(offering.get("description", "")),
        "course_start": long_date(offering["start"]),
        "course_end": long_date(offering["end"]),
        "course_timezone": escape(offering["timezone"]),
        "course_registration": _url(offering.get("registration")),
        "course_email": escape(course["contact"]["email"]),
        "course_questions": _url(course["contact"]["questions"]),
        "course_issues": _url(course["contact"].get("issues")),
        "course_creator": escape(course["origin"]["creator"]),
        "course_origin_institution": escape(course["origin"]["institution"]),
        "course_origin_website": _url(course["origin"]["website"]),
        "course_origin_offerings": escape(course["origin"]["offerings"]),
    }
    for kind in ("lecture", "office_hour"):
        meeting = meetings[kind]
        subs[f"course_{kind}_day"] = meeting["day"]
        subs[f"course_{kind}_time"] = escape(meeting["time"])
        subs[f"course_{kind}_minutes"] = str(meeting["minutes"])
        subs[f"course_{kind}_place"] = escape(meeting["place"])
    for part in (1, 2):
        days = [row["date"] for row in course["schedule"] if row["part"] == part]
        days += [row["office_hour_date"] for row in course["schedule"]
                 if row["part"] == part and row["office_hour"]]
        subs[f"course_part{part}_dates"] = _span(days) if days else "to be announced"
        subs[f"course_part{part}_lectures"] = str(sum(
            1 for lecture in course["lectures"].values() if lecture["part"] == part))
    return subs


# --- Sphinx --------------------------------------------------------------------------------------


def _toc_pages(root: Path) -> set[str]:
    """Every page the real ``_toc.yml`` lists (docnames)."""
    toc = root / "_toc.yml"
    return set(parse_toc_yaml(toc)) if toc.is_file() else set()


def _read_course(app, config) -> None:
    path = Path(app.confdir) / config.course_data_file
    try:
        course = load(path, root=Path(app.confdir))
    except CourseDataError as exc:
        problems = "\n".join(f"  - {p}" for p in exc.problems)
        raise ConfigError(f"{config.course_data_file}: the course data file is not valid "
                          f"(fix these fields):\n{problems}") from None
    app.course_data = course
    app.course_data_path = path
    app.course_toc_pages = _toc_pages(Path(app.confdir))
    subs = dict(config.myst_substitutions or {})
    for key, value in substitutions(course).items():
        subs.setdefault(key, value)
    config.myst_substitutions = subs


def _leave_out_skipped_pages(app, env, node, contnode):
    """In a partial build, a {doc} link to a chapter that the real book has but this build left
    out becomes plain text instead of a warning. The full build never gets here for such links:
    every page of ``_toc.yml`` is in it."""
    if node.get("reftype") != "doc":
        return None
    docname = docname_join(node.get("refdoc", ""), node.get("reftarget", "")).removesuffix(".md")
    if docname in app.course_toc_pages and docname not in env.found_docs:
        return contnode
    return None


class _CourseDirective(SphinxDirective):
    """Renders Markdown built from the course data into the page."""

    has_content = False
    option_spec = {"part": directives.positive_int}

    @property
    def course(self) -> dict:
        return self.env.app.course_data

    def link(self, page: str, text: str) -> str:
        if page in self.env.found_docs:
            return f"{{doc}}`{text.replace('`', '')} </{page}>`"
        return escape(text)

    def markdown(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(self.env.app.course_data_path))
        container = nodes.container(classes=["course-data", self.name.replace(":", "-")])
        source = str(self.env.app.course_data_path)
        self.state.nested_parse(StringList(self.markdown(), source=source),
                                self.content_offset, container)
        return [container]

    def part(self) -> int | None:
        return self.options.get("part")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return lines


class CourseLectures(_CourseDirective):
    """A list of the lectures (of one part with ``:part:``), each linked to its chapter."""

    def markdown(self) -> list[str]:
        return [f"- **{lecture['id']}** {self.link(lecture['page'], lecture['title'])}"
                for lecture in self.course["lectures"].values()
                if self.part() in (None, lecture["part"])]


class CourseSchedule(_CourseDirective):
    """The week-by-week table: lecture, office hour, assignments released and walked through."""

    def markdown(self) -> list[str]:
        meetings = self.course["meetings"]
        rows = []
        for row in self.course["schedule"]:
            if self.part() not in (None, row["part"]):
                continue
            lecture = row["lecture"]
            what = (f"**{lecture['id']}** {self.link(lecture['page'], lecture['title'])}"
                    if lecture else f"*{escape(row['note'] or 'No lecture')}*")
            office = (f"{day_month(row['office_hour_date'])}: {escape(row['office_hour'])}"
                      if row["office_hour"] else "*No office hour*")
            events = []
            for task in self.course["assignments"]:
                for key, label in (("release", "released"), ("solutions", "solutions")):
                    if task[key] and row["date"] <= task[key] < row["date"] + dt.timedelta(7):
                        events.append(f"{self.link(task['page'], task['id'])} {label}")
            rows.append([str(row["week"]), f"{day_month(row['date'])}: {what}", office,
                         ", ".join(events)])
        return _table(["Week", f"Lecture ({meetings['lecture']['day']})",
                       f"Office hour ({meetings['office_hour']['day']})", "Assignments"], rows)


class CourseAssignments(_CourseDirective):
    """When each assignment is released and when its solutions are walked through."""

    def markdown(self) -> list[str]:
        lectures = self.course["lectures"]
        rows = [[f"**{self.link(t['page'], t['id'])}** {escape(t['title'])}",
                 f"{t['after']} {escape(lectures[t['after']]['title'])}",
                 day_month(t["release"], year=True), day_month(t["solutions"], year=True)]
                for t in self.course["assignments"]]
        return _table(["Assignment", "After lecture", "Released", "Solutions walked through"],
                      rows)


class CourseInstructors(_CourseDirective):
    """Who teaches the offering, with their roles."""

    def markdown(self) -> list[str]:
        lines = []
        for person in self.course["instructors"]:
            email = f" ({escape(person['email'])})" if "email" in person else ""
            lines.append(f"- **{escape(person['name'])}**{email}: {escape(person['role'])}")
        return lines


def setup(app):
    app.add_config_value("course_data_file", DEFAULT_FILE, "env", types=[str])
    # Before myst-parser reads its configuration (builder-inited), so substitutions apply.
    app.connect("config-inited", _read_course, priority=400)
    app.connect("missing-reference", _leave_out_skipped_pages)
    app.add_directive("course-lectures", CourseLectures)
    app.add_directive("course-schedule", CourseSchedule)
    app.add_directive("course-assignments", CourseAssignments)
    app.add_directive("course-instructors", CourseInstructors)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
