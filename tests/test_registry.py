"""The lazy registry: manifests, aliases, selection, 'did you mean'."""

import pytest

from harness.registry import Manifest, Registry, TargetImportError, UnknownNameError


def make_registry() -> Registry:
    registry = Registry()
    add = registry.register_callback("task", "test-plugin")
    add("aigi-mini", "x:Y", aliases=["aigi_mini"], tags=("smoke",))
    add("fakeclass", "x:Y", tags=("fakebench",))
    add("fakeclue", "x:Y", tags=("fakebench",))
    add("synthwildx", "x:Y")
    return registry


def test_alias_resolves_to_the_same_manifest():
    registry = make_registry()
    assert registry.get("task", "aigi_mini") is registry.get("task", "aigi-mini")


def test_unknown_name_suggests_close_names_once():
    registry = make_registry()
    with pytest.raises(UnknownNameError) as info:
        registry.get("task", "fakeclas")
    assert info.value.suggestions[0] == "fakeclass"
    assert "Did you mean: fakeclass" in str(info.value)
    with pytest.raises(UnknownNameError) as info:
        registry.get("task", "aigi")
    assert info.value.suggestions == ["aigi-mini"]


def test_unknown_name_without_candidates_has_no_hint():
    with pytest.raises(UnknownNameError) as info:
        make_registry().get("task", "zzzzzz")
    assert "Did you mean" not in str(info.value)


def test_select_tasks_by_name_tag_glob_and_all():
    registry = make_registry()
    assert [m.name for m in registry.select_tasks("fakebench")] == ["fakeclass", "fakeclue"]
    assert [m.name for m in registry.select_tasks("fake*")] == ["fakeclass", "fakeclue"]
    assert [m.name for m in registry.select_tasks("synthwildx,aigi_mini")] == ["synthwildx", "aigi-mini"]
    assert len(registry.select_tasks("all")) == 4
    with pytest.raises(UnknownNameError):
        registry.select_tasks("nothing*")


def test_duplicate_name_keeps_first_and_warns():
    registry = make_registry()
    registry.register_callback("task", "other-plugin")("fakeclass", "a:B")
    assert registry.get("task", "fakeclass").plugin == "test-plugin"
    assert any("other-plugin" in w for w in registry.warnings)


def test_manifest_load_errors_name_the_component():
    bad_module = Manifest("model", "m", "no_such_module_xyz:Thing", plugin="p")
    with pytest.raises(TargetImportError, match="model 'm' \\(plugin p\\) failed to import 'no_such_module_xyz'"):
        bad_module.load()
    with pytest.raises(TargetImportError, match="has no attribute 'Nope'"):
        Manifest("model", "m", "json:Nope", plugin="p").load()
    with pytest.raises(TargetImportError, match="expected 'package.module:Attribute'"):
        Manifest("model", "m", "json", plugin="p").load()
    assert Manifest("model", "m", "json:dumps", plugin="p").load().__name__ == "dumps"
