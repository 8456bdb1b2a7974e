import pandas as pd
import pytest

from embodiment import dimensions as dims
from embodiment.errors import InputError
from embodiment.norms import load_mapped_csv, load_norms, load_paired
from embodiment.splits import Split, split_concepts

LANC_HEADER = ["Word"] + [
    f"{d}.mean"
    for d in (
        "Auditory",
        "Gustatory",
        "Haptic",
        "Interoceptive",
        "Olfactory",
        "Visual",
        "Foot_leg",
        "Hand_arm",
        "Head",
        "Mouth",
        "Torso",
    )
]


def _lancaster_csv(tmp_path, rows=None, name="lanc.csv", header=None):
    rows = rows or [["APPLE"] + [3.0] * 11, ["THUNDER"] + [4.5, 0, 0.1, 1, 0, 2, 0, 0, 0, 0, 0], ["IDEA"] + [0.5] * 11]
    frame = pd.DataFrame(rows, columns=header or LANC_HEADER)
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_lancaster_roundtrip(tmp_path):
    norms = load_norms(_lancaster_csv(tmp_path))
    assert norms.language == "en" and len(norms) == 3 and len(norms.dimensions) == 11
    assert norms.column("foot")[1] == 0 and norms.column("Auditory")[1] == 4.5
    assert list(norms.index_of(["thunder", "Idea ", "missing"])) == [1, 2, -1]


def test_lancaster_xlsx(tmp_path):
    path = tmp_path / "l.xlsx"
    pd.DataFrame([["APPLE"] + [3.0] * 11, ["PEAR"] + [2.0] * 11], columns=LANC_HEADER).to_excel(path, index=False)
    assert load_norms(path).words == ["APPLE", "PEAR"]


def test_embedded_norms_are_the_lancaster_perceptual_table():
    norms = load_norms("embedded")
    assert len(norms) == 39707
    assert norms.dimensions == list(dims.LANCASTER_SENSORY)
    assert norms.means.min() >= 0 and norms.means.max() <= 5
    # "a cappella" is rated mostly auditory in the published norms
    row = norms.index_of(["a cappella"])[0]
    assert norms.means[row, norms.dimensions.index("Auditory")] == pytest.approx(4.33)


def test_paired_tables_are_row_aligned(wu2026_tables):
    en, nl = load_paired(wu2026_tables / "lancaster_dutch_train.csv")
    assert len(en) == len(nl) == 5436
    assert en.words[0] == "EXTREMELY" and nl.words[0] == "uitermate"
    assert nl.dimensions == ["Horen", "Zien", "Ruiken", "Proeven", "Voelen", "Sensaties"]
    assert en.means[0, en.dimensions.index("Auditory")] == pytest.approx(1.95)
    assert dims.equivalent("Auditory", "nl") == "Horen" and dims.equivalent("Zien", "en") == "Visual"


def test_dutch_loader_on_paired_file(wu2026_tables):
    nl = load_norms(wu2026_tables / "lancaster_dutch_test.csv", format="dutch")
    assert nl.language == "nl" and len(nl) == 3625


def test_mapped_csv(tmp_path):
    path = tmp_path / "mine.csv"
    pd.DataFrame({"lemma": ["kat", "hond"], "hear": [1.0, 2.0], "see": [4.0, 3.5]}).to_csv(path, index=False)
    norms = load_mapped_csv(path, word_column="lemma", columns={"hearing": "hear", "vision": "see"}, language="nl")
    assert norms.dimensions == ["Auditory", "Visual"]


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda p: p.unlink(), "file not found"),
        (lambda p: p.write_text(""), "file is empty"),
        (lambda p: p.write_bytes(b"Word,Auditory.mean\n\xff\xfe\x00bad,1\n"), "not UTF-8"),
        (
            lambda p: p.write_text(p.read_text().replace("Foot_leg.mean", "Foot_leg.meen")),
            "column 'Foot_leg.mean': missing column \\(did you mean 'Foot_leg.meen'",
        ),
        (lambda p: p.write_text(p.read_text().replace("THUNDER", "apple")), "duplicate words"),
        (lambda p: p.write_text(p.read_text().replace("4.5", "7.5")), "off the 0-5 scale in rows 3"),
        (lambda p: p.write_text(p.read_text().replace("4.5", "")), "empty cells in rows 3"),
        (lambda p: p.write_text(p.read_text().replace("4.5", "loud")), "non-numeric"),
        (lambda p: p.write_text(p.read_text().replace("THUNDER", " ")), "empty word"),
        (lambda p: p.write_text(LANC_HEADER[0] + "," + LANC_HEADER[1] + "\n"), "no rows"),
    ],
)
def test_bad_norms_files_get_one_clear_message(tmp_path, mutate, match):
    path = _lancaster_csv(tmp_path)
    mutate(path)
    with pytest.raises(InputError, match=match) as info:
        load_norms(path)
    assert str(path) in str(info.value)


def test_unknown_header_and_format(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(path, index=False)
    with pytest.raises(InputError, match="cannot tell the norms format"):
        load_norms(path)
    with pytest.raises(InputError, match="did you mean 'lancaster'"):
        load_norms(path, format="lancster")


def test_dimension_resolution():
    avail = ["Auditory", "Foot_leg", "Hand_arm", "Mouth"]
    assert dims.resolve("foot", avail) == "Foot_leg"
    assert dims.resolve("HAND", avail) == "Hand_arm"
    assert dims.resolve("auditory.mean", avail) == "Auditory"
    with pytest.raises(InputError, match="did you mean 'Mouth'"):
        dims.resolve("mouht", avail)
    assert dims.subset(avail, "motor") == ["Foot_leg", "Hand_arm", "Mouth"]
    assert dims.subset(avail, "sensory") == ["Auditory"]


def test_split_is_seeded_grouped_and_recorded(tmp_path):
    words = [f"w{i}" for i in range(100)] + ["w1", "w2"]  # repeated concepts stay together
    s = split_concepts(words, 0.3, seed=5)
    assert s == split_concepts(words, 0.3, seed=5)
    assert s != split_concepts(words, 0.3, seed=6)
    assert not set(s.train) & set(s.test)
    assert len(set(s.test)) == 30 and len(s.train) + len(s.test) == 102
    assert Split.load(s.save(tmp_path / "split.json")) == s
    record = tmp_path / "split.json"
    record.write_text(record.read_text().replace('"w0"', '"zz"', 1))
    with pytest.raises(InputError, match="digest"):
        Split.load(record)
