"""The shipped torch models load with older torch, as on Slicer 5.8.

Slicer 5.8 runs Python 3.9, where the newest torch is 2.8; the models were saved with a newer
one. Only a CUDA build of torch 2.8 (several GB) is on the package registries, so instead of
loading them with it, this reads each file the way any torch since 2.0 reads it, without
torch: a zip archive of uncompressed records, a pickle of protocol 2 whose only globals are
the ones torch's weights-only loader has accepted since 2.0 (an ordered dict, tensors rebuilt
from typed storages), and the archive records those loaders know. A model saved with
something newer (a new tensor subclass, a new storage type, a compressed record, a higher
pickle protocol) fails here.
"""
from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[2] / "Resources" / "Models"
TORCH_FILES = sorted(MODELS.glob("*.pt"))

#: Globals a state dict may name, all accepted by ``torch.load(weights_only=True)`` since torch 2.0.
OLD_LOADER_GLOBALS = {"collections OrderedDict", "torch._utils _rebuild_tensor_v2",
                      "torch._utils _rebuild_parameter"} | {
    f"torch {kind}Storage" for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char",
                                        "Byte", "Bool")}
#: Highest pickle protocol torch.save writes by default (and any torch reads).
PICKLE_PROTOCOL = 2
#: The archive records besides the pickle and the tensor data, with the values older loaders read.
KNOWN_RECORDS = {"version": {"3"}, "byteorder": {"little"}, ".format_version": {"1"},
                 ".storage_alignment": {"64"}}


def test_the_models_are_there():
    assert {p.stem for p in TORCH_FILES} >= {"margan_cochlea", "lvae_cochlea_phantom", "oneshot_cochlea_phantom"}


def _pickle_facts(data: bytes):
    protocols, names = set(), set()
    for opcode, argument, _position in pickletools.genops(data):
        if opcode.name == "PROTO":
            protocols.add(argument)
        elif opcode.name in ("GLOBAL", "INST"):
            names.add(argument)
        elif opcode.name == "STACK_GLOBAL":     # protocol 4: a global torch before 2.0 never writes
            names.add("<STACK_GLOBAL>")
    return protocols, names


@pytest.mark.parametrize("path", TORCH_FILES, ids=lambda p: p.name)
def test_an_older_torch_reads_every_record_of_the_model(path):
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
        assert all(e.compress_type == zipfile.ZIP_STORED for e in entries), "torch reads uncompressed records only"
        root = entries[0].filename.split("/")[0]
        names = {e.filename[len(root) + 1:] for e in entries}
        assert all(e.filename.startswith(root + "/") for e in entries)
        protocols, globals_named = _pickle_facts(archive.read(f"{root}/data.pkl"))
        records = {name: archive.read(f"{root}/{name}").decode().strip() for name in KNOWN_RECORDS if name in names}
    assert protocols and max(protocols) <= PICKLE_PROTOCOL, protocols
    assert globals_named <= OLD_LOADER_GLOBALS, globals_named - OLD_LOADER_GLOBALS
    for name, value in records.items():
        assert value in KNOWN_RECORDS[name], (name, value)
    unknown = {n for n in names if n != "data.pkl" and not n.startswith("data/") and not n.startswith(".data/")
               and n not in KNOWN_RECORDS}
    assert not unknown, f"records an older loader does not know: {unknown}"


def test_the_check_refuses_a_file_only_a_newer_torch_reads(tmp_path):
    """The same reading on a state dict pickled with protocol 4 and a newer global fails."""
    import collections
    import fractions
    import pickle

    newer = pickle.dumps(collections.OrderedDict(weight=fractions.Fraction(1, 3)), protocol=4)
    protocols, names = _pickle_facts(newer)
    assert max(protocols) > PICKLE_PROTOCOL and not names <= OLD_LOADER_GLOBALS
    old_protocol = pickle.dumps(collections.OrderedDict(weight=fractions.Fraction(1, 3)), protocol=2)
    protocols, names = _pickle_facts(old_protocol)
    assert max(protocols) <= PICKLE_PROTOCOL and names - OLD_LOADER_GLOBALS == {"fractions Fraction"}
