"""The course data file (book/_data/course.yml) and the pages it feeds (book/_ext/course_data.py).

The real file must validate and state the course's rules; a broken file must stop the build
with a message naming the field (unit checks on the loader and on the build's handler); the
shared tiny book (tests/tiny_book) and the built syllabus and home page must show the data.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from html import unescape
from types import SimpleNamespace

import course_data
import pytest
import yaml
from sphinx.errors import ConfigError

from conftest import ROOT

DATA = ROOT / "book" / "_data" / "course.yml"
UNREPLACED = re.compile(r"\{\{\s*\w+\s*\}\}|course_\w+")  # a substitution left as text


def raw() -> dict:
    return yaml.load(DATA.read_text(), Loader=course_data._Loader)


def load_mutated(tmp_path, mutate):
    data = raw()
    mutate(data)
    path = tmp_path / "course.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return course_data.load(path, root=ROOT)


# --- The real file -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def course():
    return course_data.load(DATA, root=ROOT)


def test_course_file_validates(course):
    offering = course["offering"]
    assert offering["name"] and offering["start"] < offering["end"]
    assert course["instructors"] and all(p["name"] and p["role"] for p in course["instructors"])
    assert course["contact"]["email"] and course["contact"]["questions"]
    assert course["origin"]["creator"] == "Hui Xue"


def test_every_lecture_is_in_the_toc_and_scheduled_once(course):
    toc = course_data._toc_pages(ROOT)
    scheduled = [row["lecture"]["id"] for row in course["schedule"] if row["lecture"]]
    assert sorted(scheduled) == sorted(course["lectures"])
    for lecture in course["lectures"].values():
        assert lecture["page"] in toc, lecture
    for task in course["assignments"]:
        assert task["page"] in toc, task


def test_schedule_dates_are_in_order_and_on_the_meeting_days(course):
    lecture_day = course["meetings"]["lecture"]["day"]
    office_day = course["meetings"]["office_hour"]["day"]
    dates = [row["date"] for row in course["schedule"]]
    assert dates == sorted(dates) and len(set(dates)) == len(dates)
    for row in course["schedule"]:
        assert row["date"].strftime("%A") == lecture_day
        assert row["office_hour_date"].strftime("%A") == office_day
        assert dt.timedelta(0) < row["office_hour_date"] - row["date"] < dt.timedelta(7)
        assert course["offering"]["start"] <= row["date"] <= course["offering"]["end"]
    parts = [row["part"] for row in course["schedule"]]
    assert parts == sorted(parts) and set(parts) == {1, 2}


def test_assignments_follow_the_course_rules(course):
    """A1 after L4, A2 after L6, A3 after L8, A4 after L10, A5 after L12; solutions two weeks
    after release, on a Friday office hour (walked through there); everything inside the
    offering."""
    assert [(t["id"], t["after"]) for t in course["assignments"]] == [
        ("A1", "L4"), ("A2", "L6"), ("A3", "L8"), ("A4", "L10"), ("A5", "L12")]
    lecture_date = {row["lecture"]["id"]: row["date"] for row in course["schedule"]
                    if row["lecture"]}
    office_days = {row["office_hour_date"] for row in course["schedule"] if row["office_hour"]}
    for task in course["assignments"]:
        assert task["release"] >= lecture_date[task["after"]]
        assert task["solutions"] - task["release"] == dt.timedelta(days=14)
        assert task["solutions"] in office_days, f"{task['id']}: no office hour that day"
        assert course["offering"]["start"] <= task["release"] < task["solutions"]
        assert task["solutions"] <= course["offering"]["end"]


def test_substitutions_are_filled(course):
    subs = course_data.substitutions(course)
    assert subs["course_lecture_day"] == "Wednesday"
    assert subs["course_lecture_minutes"] == "90"
    assert subs["course_office_hour_day"] == "Friday"
    assert subs["course_office_hour_minutes"] == "60"
    assert all(isinstance(v, str) and v for k, v in subs.items() if k != "course_description")
    assert all(key.startswith("course_") for key in subs)


# --- Broken files: clear errors naming the field -------------------------------------------------


def _delete(path):
    def mutate(data):
        *parents, last = path
        for key in parents:
            data = data[key]
        del data[last]
    return mutate


def _set(path, value):
    def mutate(data):
        *parents, last = path
        for key in parents:
            data = data[key]
        data[last] = value
    return mutate


WEEK_OFF = next(i for i, row in enumerate(raw()["schedule"]) if row["lecture"] == "none")
BROKEN = {
    # the form (the schema)
    "missing offering start": (_delete(["offering", "start"]),
                               "offering: 'start' is a required property"),
    "missing lecture time": (_delete(["meetings", "lecture", "time"]),
                             "meetings.lecture: 'time' is a required property"),
    "no instructors": (_delete(["instructors"]), "(file): 'instructors' is a required property"),
    "empty instructors": (_set(["instructors"], []), "instructors: [] should be non-empty"),
    "missing lecture page": (_delete(["lectures", 3, "page"]),
                             "lectures[3]: 'page' is a required property"),
    "misspelt field": (_set(["assignments", 0, "solution"], "2026-10-23"),
                       "assignments[0]: Additional properties are not allowed "
                       "('solution' was unexpected)"),
    "impossible date": (_set(["schedule", 2, "date"], "2026-13-40"),
                        "schedule[2].date: '2026-13-40' is not a 'date' (write dates as "
                        "YYYY-MM-DD)"),
    "unpadded date": (_set(["assignments", 0, "release"], "2026-10-9"),
                      "assignments[0].release: '2026-10-9' is not a 'date'"),
    "time read as a number": (_set(["meetings", "lecture", "time"], 840),
                              "meetings.lecture.time: 840 is not of type 'string'"),
    "blank name": (_set(["offering", "name"], "  "), "offering.name: '  ' does not match"),
    "wrong weekday name": (_set(["meetings", "office_hour", "day"], "Fryday"),
                           "meetings.office_hour.day: 'Fryday' is not one of ['Monday'"),
    "minutes as text": (_set(["meetings", "lecture", "minutes"], "ninety"),
                        "meetings.lecture.minutes: 'ninety' is not of type 'integer'"),
    "part 3": (_set(["lectures", 0, "part"], 3), "lectures[0].part: 3 is not one of [1, 2]"),
    "week off without a note": (_delete(["schedule", WEEK_OFF, "note"]),
                                f"schedule[{WEEK_OFF}]: 'note' is a required property"),
    # the rules between fields
    "lecture on the wrong day": (_set(["schedule", 0, "date"], "2026-09-10"),
                                 "schedule[0].date: 2026-09-10 is a Thursday, not a Wednesday"),
    "weeks out of order": (_set(["schedule", 3, "date"], "2026-09-16"),
                           "schedule[3].date: 2026-09-16 is not after"),
    "release before its lecture": (_set(["assignments", 0, "release"], "2026-10-02"),
                                   "assignments[0].release: 2026-10-02 is before lecture L4"),
    "release outside the offering": (_set(["assignments", 2, "release"], "2027-06-04"),
                                     "assignments[2].release: 2027-06-04 is outside the offering"),
    "solutions before release": (_set(["assignments", 1, "solutions"], "2026-10-16"),
                                 "assignments[1].solutions: 2026-10-16 is not after the release"),
    "unknown lecture": (_set(["schedule", 1, "lecture"], "L99"),
                        "schedule[1].lecture: 'L99' is not the id of any entry in lectures"),
    "lecture scheduled twice": (_set(["schedule", 1, "lecture"], "P"),
                                "schedule[1].lecture: 'P' is scheduled twice"),
    "page that does not exist": (_set(["lectures", 0, "page"], "book/part1/nowhere"),
                                 "lectures[0].page: book/part1/nowhere.md does not exist"),
    "end before start": (_set(["offering", "end"], "2026-01-01"),
                         "offering.end: 2026-01-01 is before offering.start 2026-09-09"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_data_is_reported_by_field(tmp_path, case):
    mutate, message = BROKEN[case]
    with pytest.raises(course_data.CourseDataError) as error:
        load_mutated(tmp_path, mutate)
    assert message in str(error.value)
    assert str(tmp_path / "course.yml") in str(error.value)


def test_every_problem_is_listed(tmp_path):
    def mutate(data):
        del data["offering"]["start"]
        data["schedule"][2]["date"] = "2026-13-40"

    with pytest.raises(course_data.CourseDataError) as error:
        load_mutated(tmp_path, mutate)
    assert len(error.value.problems) == 2 and "2 problems" in str(error.value)


def test_unreadable_yaml_is_reported(tmp_path):
    path = tmp_path / "course.yml"
    path.write_text("offering: [unclosed\n")
    with pytest.raises(course_data.CourseDataError, match="not valid YAML"):
        course_data.load(path)


def test_a_bad_file_stops_the_build_naming_the_file_and_field(tmp_path):
    """What the build does at config-inited with a broken file: a ConfigError (Sphinx stops
    before reading any page) naming the file and each field."""
    (tmp_path / "_data").mkdir()
    data = raw()
    data["offering"]["timezone"] = ""
    (tmp_path / "_data" / "course.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    app = SimpleNamespace(confdir=str(tmp_path))
    config = SimpleNamespace(course_data_file="_data/course.yml", myst_substitutions={})
    with pytest.raises(ConfigError) as error:
        course_data._read_course(app, config)
    assert str(error.value).startswith("_data/course.yml: the course data file is not valid")
    assert "offering.timezone: '' does not match" in str(error.value)


def test_left_out_chapters_are_text_and_unknown_pages_stay_errors():
    """In a partial build, a {doc} link to a chapter of the real _toc.yml that the build left
    out becomes its text; a page in no table of contents is left to Sphinx (a warning)."""
    app = SimpleNamespace(course_toc_pages={"book/part1/l2-training", "book/intro"})
    env = SimpleNamespace(found_docs={"book/intro"})
    text = object()

    def resolve(target, reftype="doc"):
        node = {"reftype": reftype, "reftarget": target, "refdoc": "book/part1/l1-neural-networks"}
        return course_data._leave_out_skipped_pages(app, env, node, text)

    assert resolve("l2-training") is text
    assert resolve("/book/part1/l2-training.md") is text
    assert resolve("no-such-page") is None
    assert resolve("../intro") is None  # in the build: Sphinx resolves it
    assert resolve("l2-training", reftype="ref") is None


# --- The shared tiny book: the data rendered by a real build -------------------------------------


def text_of(html_file) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html_file.read_text())))


def test_tiny_book_renders_the_data(tiny_book):
    assert not [w for w in tiny_book.warnings() if "/tiny_book/index.md" in w]
    html = (tiny_book.html / "index.html").read_text()
    text = text_of(tiny_book.html / "index.html")
    assert "Lectures are on Wednesdays at 10:00-11:30, starting Wednesday 2 January 2030" in text
    assert "Part 1 runs 2 January to 11 January 2030" in text
    assert "Wed 2 Jan: L1 First lecture" in text and "Fri 4 Jan: Setup clinic" in text
    assert "No lecture" in text and "A1 released" in text and "A1 solutions" in text
    assert "Fri 4 Jan 2030" in text and "Fri 18 Jan 2030" in text
    assert "Course instructor : Lectures" in text or "Course instructor: Lectures" in text
    assert 'href="lecture1.html"' in html and 'href="a1.html"' in html
    assert not UNREPLACED.search(text)


def test_tiny_book_partial_build_shows_left_out_chapters_as_text(tiny_book):
    """Built with _toc_partial.yml, which leaves out lecture2: its links are plain text, while a
    link to a page in no table of contents still fails the build."""
    html = (tiny_book.html / "index.html").read_text()
    text = text_of(tiny_book.html / "index.html")
    assert "See lecture2" in text and "L2 Second lecture" in text
    assert 'href="lecture2.html"' not in html
    assert any("unknown document: 'no-such-page'" in w for w in tiny_book.warnings())


# --- The real, full build ------------------------------------------------------------------------


def test_syllabus_shows_the_course_data(book, course):
    assert book.ok, book.log[-3000:]
    page = book.html / "book" / "course" / "syllabus.html"
    html, text = page.read_text(), text_of(page)
    assert course["offering"]["name"] in text
    assert not UNREPLACED.search(text), UNREPLACED.search(text)
    meetings = course["meetings"]
    assert f"Every {meetings['lecture']['day']}, {meetings['lecture']['time']}" in text
    assert f"{meetings['office_hour']['minutes']} minutes" in text
    for row in course["schedule"]:
        assert course_data.day_month(row["date"]) in text
        if row["office_hour"]:
            assert f"{course_data.day_month(row['office_hour_date'])}: " in text
    for lecture in course["lectures"].values():
        assert lecture["title"] in text
        target = posixpath.relpath(lecture["page"], "book/course") + ".html"
        assert f'href="{target}' in html, f"no link to {lecture['page']}"
    for task in course["assignments"]:
        assert course_data.day_month(task["release"], year=True) in text
        assert course_data.day_month(task["solutions"], year=True) in text
        assert f"{task['id']} released" in text and f"{task['id']} solutions" in text
    for person in course["instructors"]:
        assert person["role"] in text


def test_home_page_lists_both_parts_with_links(book, course):
    assert book.ok, book.log[-3000:]
    page = book.html / "book" / "intro.html"
    html, text = page.read_text(), text_of(page)
    assert not UNREPLACED.search(text) and course["origin"]["creator"] in text
    for lecture in course["lectures"].values():
        assert f'href="{lecture["page"].removeprefix("book/")}.html' in html, lecture["page"]
    assert "CC BY 4.0" in text and "MIT" in text
