#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_events (corpus_events/): request bodies of
POST /v1/events, valid and broken. "VISITOR" is the harness's known visitor."""
import json, os

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_events")
os.makedirs(out, exist_ok=True)

def ev(i, **kw):
    e = {"event_id": "till-%d" % i, "visitor": "VISITOR", "type": "purchase",
         "ts": "2026-12-04T09:59:00Z", "location": "paris-1", "amount_minor": 1299,
         "currency": "EUR", "attrs": {"sku": "A-1", "items": 2, "gift": False, "note": None}}
    e.update(kw)
    return {k: v for k, v in e.items() if v is not ...}

seeds = {
    "good_one": {"events": [ev(1)]},
    "good_custom": {"events": [{"event_id": "sig-1", "visitor": "VISITOR", "type": "newsletter_signup",
                                "ts": "2026-12-04T11:00:00+01:00"}]},
    "mixed": {"events": [ev(1), ev(1), ev(2, currency="eur"), ev(3, amount_minor=-5),
                         ev(4, visitor="vis_AAAAAAAAAAAAAAAAAAAAAA"), ev(5, ts="2026-12-04T10:06:00Z"),
                         ev(6, ts="2025-01-01T00:00:00Z"), ev(7, type="Bad-Type"), ev(8, attrs={"x": [1]}),
                         ev(9, amount_minor=..., currency=...), ev(10, extra=1), ev(11, amount_minor=1.5),
                         ev(12, location=""), ev(13, event_id="a b"), "notanobject"]},
    "many": {"events": [ev(i) for i in range(40)]},
    "empty": {"events": []},
    "not_array": {"events": {}},
    "unknown_top": {"events": [ev(1)], "x": 1},
}
for name, body in seeds.items():
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(body, f, separators=(",", ":"))
raw = {
    "truncated": '{"events":[{"event_id":"t1",',
    "dup_keys": '{"events":[{"event_id":"a","event_id":"b"}]}',
    "deep": '{"events":[' + '[' * 200 + ']' * 200 + ']}',
    "top_array": '[{"event_id":"x"}]',
}
for name, text in raw.items():
    with open(os.path.join(out, name + ".json"), "w") as f:
        f.write(text)
