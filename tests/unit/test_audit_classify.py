"""ops audit's classification, key by key (audit/classify.py): no S3, no imgix."""

from __future__ import annotations

from imgix_autoadder.audit.classify import (
    CLOCK_TOLERANCE_S,
    ListedAsset,
    OriginObject,
    Verdict,
    classify,
)
from imgix_autoadder.sources.source_map import Source

SOURCE = Source("a" * 24, "s", "s3", "bucket", "images", ("sub",), False, True)
T = 1_800_000_000.0


def obj(key: str, size: int = 10, at: float = T, content_type: str | None = None) -> OriginObject:
    return OriginObject(key, size, at, "e" * 32, content_type)


def asset(path: str, size: int = 10, at: float = T + 5, content_type: str = "image/jpeg"):
    return ListedAsset(path, size, content_type, at)


def verdicts(report) -> dict[str, tuple[Verdict, str]]:
    return {f.key: (f.verdict, f.reason) for f in report.findings}


def test_every_class_with_its_reason():
    objects = [
        obj("images/same.jpg"),
        obj("images/new one+1.jpg"),  # spaces and +: origin paths are the keys' own text
        obj("images/grown.jpg", size=11),
        obj("images/changed later.jpg", at=T + 60),
        obj("images/typed.png", content_type="image/png"),
        obj("images/folder/"),
        obj("images/été/π.jpg"),
    ]
    assets = [
        asset("same.jpg"),
        asset("grown.jpg"),
        asset("changed later.jpg"),
        asset("typed.png", content_type="image/jpeg"),
        asset("été/π.jpg"),
        asset("gone.jpg"),
    ]
    found = verdicts(classify(SOURCE, objects, assets))
    assert found == {
        "images/same.jpg": (Verdict.IN_SYNC, ""),
        "images/new one+1.jpg": (Verdict.MISSING, "imgix lists none"),
        "images/grown.jpg": (Verdict.STALE, "imgix holds 10 bytes, S3 11"),
        "images/changed later.jpg": (
            Verdict.STALE,
            "S3 changed it 55 s after imgix last processed it",
        ),
        "images/typed.png": (Verdict.STALE, "imgix holds image/jpeg, S3 image/png"),
        "images/folder/": (Verdict.SKIPPED, "folder marker"),
        "images/été/π.jpg": (Verdict.IN_SYNC, ""),
        "images/gone.jpg": (Verdict.DELETED_AT_ORIGIN, ""),
    }


def test_clocks_a_second_apart_are_not_stale():
    objects = [obj("images/a.jpg", at=T + CLOCK_TOLERANCE_S)]
    assert verdicts(classify(SOURCE, objects, [asset("a.jpg", at=T)]))["images/a.jpg"][0] is (
        Verdict.IN_SYNC
    )


def test_an_unknown_content_type_contradicts_nothing():
    """ListObjectsV2 has no Content-Type: unless the audit asked S3 for it, only the size
    and the time are compared."""
    objects = [obj("images/a.png")]
    found = verdicts(classify(SOURCE, objects, [asset("a.png", content_type="image/jpeg")]))
    assert found["images/a.png"][0] is Verdict.IN_SYNC


def test_a_deleted_key_says_whether_its_purge_was_recorded():
    purged = {"images/purged.jpg": True, "images/forgotten.jpg": False}
    report = classify(SOURCE, [], [asset("purged.jpg"), asset("forgotten.jpg")], purged.get)
    assert verdicts(report) == {
        "images/forgotten.jpg": (Verdict.DELETED_AT_ORIGIN, "no purge recorded"),
        "images/purged.jpg": (Verdict.DELETED_AT_ORIGIN, "purge recorded"),
    }
    assert report.needs_fixing == []  # imgix has no delete: nothing to send


def test_a_source_at_the_bucket_root_maps_keys_as_they_are():
    root = Source("b" * 24, "r", "s3", "bucket", "", (), False, True)
    report = classify(root, [obj("a.jpg"), obj("b/c.jpg")], [asset("a.jpg")])
    assert verdicts(report) == {
        "a.jpg": (Verdict.IN_SYNC, ""),
        "b/c.jpg": (Verdict.MISSING, "imgix lists none"),
    }
    assert [f.key for f in report.needs_fixing] == ["b/c.jpg"]
