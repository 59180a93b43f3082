"""The settings are declared once (core/config.py): the docs table is generated from that
declaration, and template.yaml sets what each function needs and nothing undeclared."""

from __future__ import annotations

from typing import Any

import pytest

from imgix_autoadder.core.config import ConfigError, load_settings
from imgix_autoadder.core.settings import EVERY_FUNCTION, declared
from imgix_autoadder.core.settings import needed_by as needed_by_function
from localdev import settings_doc
from tests.harness.template import RESOURCES, TEMPLATE

LOGICAL_IDS = {
    "indexer": "IndexerFunction",
    "upload_router": "UploadRouterFunction",
    "uploader": "UploaderFunction",
    "backfill": "BackfillFunction",
    "source_manager": "SourceManagerFunction",
    "auditor": "AuditorFunction",
}
NOT_OURS = ("POWERTOOLS_",)  # Powertools reads these itself


def template_environment(function: str) -> dict[str, Any]:
    shared = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    own = RESOURCES[LOGICAL_IDS[function]]["Properties"].get("Environment", {})
    return {**shared, **own.get("Variables", {})}


def test_the_settings_document_is_generated_from_the_declaration():
    assert settings_doc.DOC.read_text() == settings_doc.render(), (
        "docs/settings.md is stale: run `.venv/bin/python -m localdev.settings_doc`"
    )


def test_every_function_of_the_template_is_named_in_the_declaration():
    functions = {name for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}
    assert functions == set(LOGICAL_IDS.values())
    assert set(EVERY_FUNCTION) == set(LOGICAL_IDS)


@pytest.mark.parametrize("function", sorted(LOGICAL_IDS))
def test_the_template_sets_what_each_function_needs(function: str):
    environment = template_environment(function)
    missing = [name for name in needed_by_function(function) if name not in environment]
    assert not missing, f"{LOGICAL_IDS[function]} needs {missing}"


@pytest.mark.parametrize("function", sorted(LOGICAL_IDS))
def test_the_template_sets_no_undeclared_variable(function: str):
    known = {spec.metadata["env"] for spec in declared()}
    unknown = [
        name
        for name in template_environment(function)
        if name not in known and not name.startswith(NOT_OURS)
    ]
    assert not unknown, f"{LOGICAL_IDS[function]} sets undeclared {unknown}"


@pytest.mark.parametrize("function", sorted(LOGICAL_IDS))
def test_a_function_refuses_to_start_without_what_it_needs(function: str):
    base = {"IMGIX_API_KEY_SECRET": "s", "IMGIX_SOURCE_IDS": "a" * 24}
    for name in needed_by_function(function):
        if name in base:
            continue
        with pytest.raises(ConfigError, match=f"{name} is required by this function"):
            load_settings({**base}, function=function)


def test_the_clients_defaults_are_the_settings_defaults():
    from imgix_autoadder.imgix.client import ImgixClient

    settings = load_settings({"IMGIX_API_KEY_SECRET": "s", "IMGIX_SOURCE_IDS": "a" * 24})
    client = ImgixClient("key")
    for name in ("connect_timeout_s", "read_timeout_s", "max_retries", "backoff_factor_s"):
        assert getattr(client, name) == getattr(settings, name)
    assert client.base_url == settings.api_base_url
    assert client.max_pacing_wait_s == settings.max_pacing_wait_s
