"""The course data file (book/_data/course.yml) and the pages it feeds (book/_ext/course_data.py).

The real file must validate and state the course's rules; a broken file must stop the build
with a message naming the field (unit checks on the loader, then tiny scratch books built with
the extension); the built syllabus and home page must show the data.
"""

from __future__ import annotations

import datetime as dt
import importlib
import posixpath
import re
import sys
import textwrap
from html import unescape

import pytest
import yaml

from conftest import ROOT, jupyter_book

sys.path.insert(0, str(ROOT / "book" / "_ext"))
course_data = importlib.import_module("course_data")

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
    """A1 after L4, A2 after L6, A3 after L8; solutions two weeks after release, on a Friday
    office hour (walked through there); everything inside the offering."""
    assert [(t["id"], t["after"]) for t in course["assignments"]] == [
        ("A1", "L4"), ("A2", "L6"), ("A3", "L8")]
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


BROKEN = {
    "missing offering start": (_delete(["offering", "start"]), "offering.start: missing"),
    "missing lecture time": (_delete(["meetings", "lecture", "time"]),
                             "meetings.lecture.time: missing"),
    "no instructors": (_delete(["instructors"]), "instructors: missing"),
    "missing lecture page": (_delete(["lectures", 3, "page"]), "lectures[3].page: missing"),
    "impossible date": (_set(["schedule", 2, "date"], "2026-13-40"),
                        "schedule[2].date: '2026-13-40' is not a date in YYYY-MM-DD form"),
    "unpadded date": (_set(["assignments", 0, "release"], "2026-10-9"),
                      "assignments[0].release: '2026-10-9' is not a date"),
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
    "page that does not exist": (_set(["lectures", 0, "page"], "book/part1/nowhere"),
                                 "lectures[0].page: book/part1/nowhere.md does not exist"),
    "wrong weekday name": (_set(["meetings", "office_hour", "day"], "Fryday"),
                           "meetings.office_hour.day: 'Fryday' is not a day of the week"),
    "minutes as text": (_set(["meetings", "lecture", "minutes"], "ninety"),
                        "meetings.lecture.minutes: expected a positive whole number"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_data_is_reported_by_field(tmp_path, case):
    mutate, message = BROKEN[case]
    with pytest.raises(course_data.CourseDataError) as error:
        load_mutated(tmp_path, mutate)
    assert message in str(error.value)
    assert str(tmp_path / "course.yml") in str(error.value)


def test_unreadable_yaml_is_reported(tmp_path):
    path = tmp_path / "course.yml"
    path.write_text("offering: [unclosed\n")
    with pytest.raises(course_data.CourseDataError, match="not valid YAML"):
        course_data.load(path)


# --- Tiny scratch books built with the extension -------------------------------------------------

TINY_COURSE = textwrap.dedent("""\
    offering: {name: "Tiny offering 2030", start: 2030-01-02, end: 2030-01-18,
               timezone: "UTC", description: "a scratch offering"}
    meetings:
      lecture: {day: Wednesday, time: "10:00-11:30", minutes: 90, place: "<room>"}
      office_hour: {day: Friday, time: "10:00-11:00", minutes: 60, place: "<room>"}
    instructors:
      - {name: "Course instructor", role: "Lectures"}
    contact: {email: "<address>", questions: "https://example.org/forum"}
    origin: {creator: "Hui Xue", institution: "NHLBI", website: "https://example.org",
             offerings: "2021 and 2022"}
    lectures:
      - {id: L1, part: 1, title: "First lecture", page: lecture1}
      - {id: L2, part: 2, title: "Second lecture", page: lecture2}
    assignments:
      - {id: A1, title: "First assignment", page: a1, after: L1, release: 2030-01-04,
         solutions: 2030-01-18}
    schedule:
      - {date: 2030-01-02, lecture: L1, office_hour: "Setup clinic"}
      - {date: 2030-01-09, lecture: none, note: "No lecture", office_hour: "Questions"}
      - {date: 2030-01-16, lecture: L2, office_hour: "Walk-through"}
    """)
TINY_CONFIG = textwrap.dedent(f"""\
    title: Course data
    only_build_toc_files: true
    execute:
      execute_notebooks: "off"
    parse:
      myst_enable_extensions: [colon_fence, deflist, substitution]
    sphinx:
      local_extensions:
        course_data: {ROOT / "book" / "_ext"}
      config:
        course_data_file: _data/course.yml
    """)
TINY_INDEX = textwrap.dedent("""\
    # Tiny course

    Lectures are on {{ course_lecture_day }}s at {{ course_lecture_time }}, starting
    {{ course_start }}. Part 1 runs {{ course_part1_dates }}.

    ```{course-lectures}
    :part: 1
    ```

    ```{course-schedule}
    ```

    ```{course-assignments}
    ```

    ```{course-instructors}
    ```
    """)
TINY_TOC = ("format: jb-book\nroot: index\nchapters:\n"
            "  - file: lecture1\n  - file: lecture2\n  - file: a1\n")


def tiny_book(path, course=TINY_COURSE, index=TINY_INDEX):
    path.mkdir()
    (path / "_data").mkdir()
    (path / "_data" / "course.yml").write_text(course)
    (path / "_config.yml").write_text(TINY_CONFIG)
    (path / "_toc.yml").write_text(TINY_TOC)
    (path / "index.md").write_text(index)
    for name, title in (("lecture1", "First lecture"), ("lecture2", "Second lecture"),
                        ("a1", "First assignment")):
        (path / f"{name}.md").write_text(f"# {title}\n\nText.\n")
    return path


def text_of(html_file) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html_file.read_text())))


def test_tiny_book_renders_the_data(tmp_path):
    build = jupyter_book(tiny_book(tmp_path / "book"), tmp_path / "out")
    assert build.ok, build.log[-3000:]
    assert "WARNING:" not in build.log
    html = (build.html / "index.html").read_text()
    text = text_of(build.html / "index.html")
    assert "Lectures are on Wednesdays at 10:00-11:30, starting Wednesday 2 January 2030" in text
    assert "Part 1 runs 2 January to 11 January 2030" in text
    assert "Wed 2 Jan: L1 First lecture" in text and "Fri 4 Jan: Setup clinic" in text
    assert "No lecture" in text and "A1 released" in text and "A1 solutions" in text
    assert "Fri 4 Jan 2030" in text and "Fri 18 Jan 2030" in text
    assert "Course instructor : Lectures" in text or "Course instructor: Lectures" in text
    assert 'href="lecture1.html"' in html and 'href="a1.html"' in html
    assert not UNREPLACED.search(text)


def test_tiny_book_missing_field_is_a_build_error(tmp_path):
    broken = TINY_COURSE.replace(' start: 2030-01-02,', '')
    build = jupyter_book(tiny_book(tmp_path / "book", course=broken), tmp_path / "out")
    assert not build.ok, "the build passed without offering.start"
    assert "_data/course.yml" in build.log
    assert "offering.start: missing" in build.log
    assert not (build.html / "index.html").exists(), "a page was published anyway"


def test_tiny_book_bad_date_is_a_build_error(tmp_path):
    broken = TINY_COURSE.replace("release: 2030-01-04", "release: 2030-02-30")
    build = jupyter_book(tiny_book(tmp_path / "book", course=broken), tmp_path / "out")
    assert not build.ok, "the build passed with 2030-02-30"
    assert "assignments[0].release: '2030-02-30' is not a date in YYYY-MM-DD form" in build.log


def test_partial_build_shows_left_out_chapters_as_text(tmp_path):
    """Like scripts/build_pages.py: a chapter of the real _toc.yml left out of a partial build
    is plain text, not a warning; a link to a page that is in no table of contents still
    fails the build."""
    book = tiny_book(tmp_path / "book", index=TINY_INDEX + "\nSee {doc}`lecture2`.\n")
    partial = tmp_path / "partial.yml"
    partial.write_text("format: jb-book\nroot: index\nchapters:\n  - file: lecture1\n")
    build = jupyter_book(book, tmp_path / "out", "--toc", str(partial))
    assert build.ok, build.log[-3000:]
    text = text_of(build.html / "index.html")
    assert "See lecture2" in text and "Second lecture" in text
    assert 'href="lecture2.html"' not in (build.html / "index.html").read_text()

    (book / "index.md").write_text(TINY_INDEX + "\nSee {doc}`no-such-page`.\n")
    build = jupyter_book(book, tmp_path / "out2", "--toc", str(partial))
    assert not build.ok and "no-such-page" in build.log


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
