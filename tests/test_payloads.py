"""customer_raw keeps every payload, compressed, and gives each back whole."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import API_KEY
from mirror.commands.sync import sync_once
from mirror.config import load_settings
from mirror.exit_codes import EXIT_OK
from mirror.simulator.server import SimulatorServer
from mirror.store import Store
from mirror.store.payloads import TRAIN_FROM, PayloadCodec

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """An account large enough for the first import to train a dictionary, synced once."""
    with SimulatorServer(customers=TRAIN_FROM + 300, seed=5, api_key=API_KEY) as sim:
        db = tmp_path_factory.mktemp("payloads") / "mirror.db"
        code, _report = sync_once(load_settings(env={"SPMIRROR_API_URL": sim.url, "SPMIRROR_API_KEY": sim.api_key,
                                                     "SPMIRROR_DB": str(db)}))
        assert code == EXIT_OK
        listed = {remote_id: sim.account.read_shape(remote_id) for remote_id in sim.account.ids()}
        yield db, listed


def test_every_payload_is_stored_compressed_and_reads_back_as_listed(imported):
    db, listed = imported
    with sqlite3.connect(db) as con:
        dictionaries = con.execute("SELECT count(*), max(samples) FROM payload_dictionaries").fetchone()
        kinds = dict(con.execute("SELECT typeof(listing_json), count(*) FROM customer_raw GROUP BY 1"))
        average = con.execute("SELECT avg(length(listing_json)) FROM customer_raw").fetchone()[0]
    assert dictionaries[0] == 1 and dictionaries[1] >= TRAIN_FROM
    assert kinds == {"blob": len(listed)}
    assert average < 300  # the JSON is about 1 KB a record
    with Store.open(db) as store:
        for remote_id in list(listed)[:: len(listed) // 40]:
            assert json.loads(store.last_record(remote_id)["listing_json"]) == listed[remote_id]


def test_a_frame_whose_dictionary_is_missing_says_so(imported):
    db, listed = imported
    with sqlite3.connect(db) as con:
        frame = con.execute("SELECT listing_json FROM customer_raw LIMIT 1").fetchone()[0]
        empty = sqlite3.connect(":memory:")
        empty.execute("CREATE TABLE payload_dictionaries (id INTEGER PRIMARY KEY, trained_at, samples, dictionary)")
    with pytest.raises(ValueError, match="dictionary .* which this file lacks"):
        PayloadCodec(empty).decompress(frame)


def test_small_batches_get_plain_frames_and_text_rows_still_read(tmp_path):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE payload_dictionaries (id INTEGER PRIMARY KEY, trained_at, samples, dictionary)")
    codec = PayloadCodec(db)
    texts = [json.dumps({"customer_id": str(70000 + i), "customer_email": f"x{i}@example.com"}) for i in range(10)]
    codec.learn(db, texts, "2026-12-01T00:00:00Z")  # too few to learn from
    assert db.execute("SELECT count(*) FROM payload_dictionaries").fetchone()[0] == 0
    frames = [codec.compress(text) for text in texts]
    assert [codec.decompress(frame) for frame in frames] == texts
    assert codec.decompress(texts[0]) == texts[0]  # a row written as TEXT by an older version


def test_an_upgraded_file_reads_its_text_payloads(tmp_path):
    db = tmp_path / "mirror.db"
    with sqlite3.connect(db) as con:
        con.executescript((FIXTURES / "mirror-v2.sql").read_text())
        remote_id, text = con.execute("SELECT pkcustomerid, listing_json FROM customer_raw LIMIT 1").fetchone()
    with Store.open(db) as store:
        assert store.last_record(remote_id)["listing_json"] == text
