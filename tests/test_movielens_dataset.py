"""MovieLens-100K as a RecDataset (augkit.data.movielens.load_movielens_100k)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from augkit import BatchValidationError, Categorical, ConfigError
from augkit.data import RecDataset, load_movielens_100k, load_movielens_items
from augkit.data.movielens import AGE_BUCKETS


def datasets_dir() -> Path:
    return Path(
        os.environ.get("AUGKIT_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )


ML_100K = datasets_dir() / "ml-100k"

OCCUPATIONS = "administrator\nartist\nnone\nwriter\n"
USERS = [
    "1|17|M|writer|85711",
    "2|18|F|artist|94043",
    "3|24|M|none|32067",
    "4|56|F|administrator|43537",
    "5|35||artist|15213",
]
RATINGS = ["3\t2\t5\t881250949", "1\t1\t1\t891717742", "5\t2\t3\t878887116", "3\t1\t4\t880606923"]


def item_line(movie: int, title: str) -> str:
    return f"{movie}|{title}|01-Jan-1995||http://example.org/{movie}|" + "|".join(
        ["0"] * 5 + ["1"] + ["0"] * 13
    )


def write_ml(
    directory: Path,
    *,
    users: list[str] = USERS,
    ratings: list[str] = RATINGS,
    occupations: str | None = OCCUPATIONS,
) -> Path:
    """A tiny ml-100k folder: 2 movies, the given u.user, u.data and (optional) u.occupation."""
    (directory / "u.item").write_text(
        item_line(1, "Toy Story (1995)") + "\n" + item_line(2, "Heat (1995)") + "\n"
    )
    (directory / "u.user").write_text("\n".join(users) + "\n")
    (directory / "u.data").write_text("\n".join(ratings) + "\n")
    if occupations is not None:
        (directory / "u.occupation").write_text(occupations)
    return directory


def test_generated_ml_100k(tmp_path):
    data = load_movielens_100k(write_ml(tmp_path))
    assert isinstance(data, RecDataset) and data.name == "movielens-100k"
    assert (data.num_users, data.num_items, len(data.interactions)) == (5, 2, 4)
    assert data.items.schema == load_movielens_items(tmp_path).schema
    users = data.users
    assert users.schema.features == (
        Categorical(name="user_id", num_values=5),
        Categorical(name="age", num_values=7),
        Categorical(name="gender", num_values=2),
        Categorical(name="occupation", num_values=4),
    )
    assert users.values["user_id"].tolist() == [0, 1, 2, 3, 4]
    assert [AGE_BUCKETS[i] for i in users.values["age"].tolist()] == ["<18", "18-24", "18-24", "56+", "35-44"]
    assert users.values["gender"][:4].tolist() == [1, 0, 1, 0]  # sorted: F, M
    assert users.is_present("gender").tolist() == [True, True, True, True, False]
    # ids in u.occupation order: administrator, artist, none, writer
    assert users.values["occupation"].tolist() == [3, 1, 2, 0, 1]
    log = data.interactions
    assert log.users.tolist() == [2, 0, 4, 2]  # user id - 1, in file order
    assert log.items.tolist() == [1, 0, 1, 0]
    assert log.timestamps.tolist() == [881250949, 891717742, 878887116, 880606923]
    assert log.users.dtype == log.items.dtype == log.timestamps.dtype == torch.int64


@pytest.mark.parametrize(
    ("age", "bucket"),
    [(0, "<18"), (17, "<18"), (18, "18-24"), (24, "18-24"), (25, "25-34"), (34, "25-34"), (35, "35-44")]
    + [(44, "35-44"), (45, "45-49"), (49, "45-49"), (50, "50-55"), (55, "50-55"), (56, "56+"), (99, "56+")],
)
def test_age_buckets_are_those_of_movielens_1m(tmp_path, age, bucket):
    data = load_movielens_100k(write_ml(tmp_path, users=[f"1|{age}|M|writer|0"], ratings=["1\t1\t5\t7"]))
    assert AGE_BUCKETS[int(data.users.values["age"][0])] == bucket


def test_occupations_from_the_data_without_u_occupation(tmp_path):
    data = load_movielens_100k(write_ml(tmp_path, occupations=None))
    # the distinct occupations of u.user, sorted: administrator, artist, none, writer
    assert data.users.schema["occupation"].num_values == 4
    assert data.users.values["occupation"].tolist() == [3, 1, 2, 0, 1]
    (tmp_path / "two").mkdir()
    only_two = ["1|30|M|writer|0", "2|30|F|doctor|0"]
    data = load_movielens_100k(
        write_ml(tmp_path / "two", users=only_two, ratings=["2\t1\t5\t7"], occupations=None)
    )
    assert data.users.schema["occupation"].num_values == 2
    assert data.users.values["occupation"].tolist() == [1, 0]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (
            {"users": [*USERS[:4], "5|35|F"]},
            ConfigError,
            r"u.user', line 5: 3 '\|'-separated fields, expected 5",
        ),
        (
            {"users": [*USERS[:2], "3|x|M|none|0"]},
            ConfigError,
            r"u.user', line 3: age 'x' is not a non-negative integer",
        ),
        (
            {"users": [*USERS[:2], "4|30|M|none|0"]},
            ConfigError,
            r"u.user', line 3: user id 4 is outside 1..3",
        ),
        (
            {"users": [*USERS[:2], "2|30|M|none|0"]},
            ConfigError,
            r"u.user': user id 2 appears on lines 2 and 3",
        ),
        (
            {"users": [*USERS[:2], "3|30|M|pilot|0"]},
            BatchValidationError,
            r"u.user', line 3: occupation 'pilot' is not listed in '.*u.occupation'",
        ),
        (
            {"occupations": "artist\nartist\n"},
            ConfigError,
            r"u.occupation': occupation 'artist' appears on lines 1 and 2",
        ),
        (
            {"ratings": [*RATINGS[:2], "6\t1\t5\t1"]},
            BatchValidationError,
            r"u.data', line 3: user id 6 is not in u.user",
        ),
        (
            {"ratings": [*RATINGS[:3], "1\t3\t5\t1"]},
            BatchValidationError,
            r"u.data', line 4: movie id 3 is not in u.item",
        ),
        (
            {"ratings": ["1\t0\t5\t1"]},
            BatchValidationError,
            r"u.data', line 1: movie id 0 is not in u.item \(ids 1..2\)",
        ),
        (
            {"ratings": [RATINGS[0], "1\t1\t5\tnoon"]},
            ConfigError,
            r"u.data', line 2: timestamp 'noon' is not a non-negative",
        ),
        (
            {"ratings": [RATINGS[0], "1\t1\t5"]},
            ConfigError,
            r"u.data', line 2: 3 tab-separated fields, expected 4",
        ),
        ({"ratings": []}, ConfigError, r"u.data' holds no ratings"),
    ],
)
def test_errors_name_file_and_line(tmp_path, changes, error, message):
    with pytest.raises(error, match=message):
        load_movielens_100k(write_ml(tmp_path, **changes))


def test_path_must_be_the_ml_100k_folder(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory; expected the ml-100k folder"):
        load_movielens_100k(tmp_path / "nowhere")
    write_ml(tmp_path)
    (tmp_path / "u.user").unlink()
    with pytest.raises(ConfigError, match=r"u.user' does not exist"):
        load_movielens_100k(tmp_path)


@pytest.mark.skipif(
    not (ML_100K / "u.data").is_file(),
    reason=f"MovieLens-100K not found at {ML_100K} (set AUGKIT_DATASETS to the datasets folder)",
)
def test_movielens_100k():
    data = load_movielens_100k(ML_100K)
    assert (data.num_users, data.num_items, len(data.interactions)) == (943, 1682, 100_000)
    users = data.users
    assert users.schema["occupation"].num_values == 21 and users.schema["gender"].num_values == 2
    assert bool(users.present.all())
    # user 1: 24, M, technician (the 20th of u.occupation)
    assert AGE_BUCKETS[int(users.values["age"][0])] == "18-24"
    assert int(users.values["gender"][0]) == 1 and int(users.values["occupation"][0]) == 19
    # counted from u.user with awk
    assert torch.bincount(users.values["age"], minlength=7).tolist() == [36, 198, 310, 194, 80, 73, 52]
    log = data.interactions
    assert (int(log.users[0]), int(log.items[0]), int(log.timestamps[0])) == (195, 241, 881250949)
    assert torch.bincount(log.users).min() == 20  # every user has rated at least 20 movies
    assert torch.bincount(log.items, minlength=1682)[49] == 583  # Star Wars (1977)
