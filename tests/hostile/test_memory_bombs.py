"""Class 3: a small file never makes the workbench allocate what it declares. Each input here is at
most about a megabyte and declares gigabytes; every command stays under 1 GB of resident memory and
says why it stopped (or analyses what it safely can)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np


def make_probe_bomb(sandbox, path: Path, op: str) -> Path:
    """A graph whose intermediate size (1.1e9 floats) comes from data static inference cannot fold."""
    from onnx import TensorProto, helper, numpy_helper

    count = numpy_helper.from_array(np.array([1_100_000_000], np.int64), "count")
    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    nodes = [helper.make_node("ReduceMax", ["count"], ["n"], name="hide", keepdims=1)]
    if op == "ConstantOfShape":
        nodes.append(helper.make_node("ConstantOfShape", ["n"], ["big"], name="grow", value=one))
    elif op == "Expand":
        nodes.append(helper.make_node("Expand", ["one", "n"], ["big"], name="grow"))
    else:
        nodes.append(helper.make_node("Tile", ["one", "n"], ["big"], name="grow"))
    nodes += [
        helper.make_node("ReduceSum", ["big"], ["s"], name="sum", keepdims=1),
        helper.make_node("Add", ["x", "s"], ["y"], name="add"),
    ]
    return sandbox.save_graph(
        path,
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [count, one],
    )


def test_a_shape_probe_bomb_is_analysed_without_running_it(sandbox):
    models = [
        make_probe_bomb(sandbox, sandbox.files / f"{op}.onnx", op) for op in ("ConstantOfShape", "Expand", "Tile")
    ]
    data = sandbox.files / "data.npz"
    np.savez(data, x=np.zeros((4, 1), np.float32))
    unchanged = sandbox.snapshot()
    for model in models:
        assert model.stat().st_size < 400
        info = sandbox.cli("info", model)
        sandbox.assert_succeeded(info)
        # Static shape folding sizes the 4.4 GB intermediate from the constants, without running anything.
        assert "4,400,000,000" in info.stdout and "peak act.  4.1 GiB" in info.stdout, info.describe()
        evaluated = sandbox.cli("eval", model, "--data", data)
        sandbox.assert_refused(evaluated, model)
        exported = sandbox.cli("export", model, "--device", "x86-server", "-o", sandbox.root / "out")
        sandbox.assert_refused(exported, model)
    unchanged()


def test_huge_checkpoint_metadata_is_refused_before_building(sandbox):
    import torch

    from workbench.archs import get_architecture

    module = get_architecture("lenet5").build(num_classes=10, in_channels=1)
    path = sandbox.files / "lenet.pt"
    meta = {"arch": "lenet5", "arch_kwargs": {"num_classes": 13_000_000, "in_channels": 1}}
    torch.save({**meta, "state_dict": module.state_dict()}, path)
    strided = sandbox.files / "strided.pt"  # a tiny storage viewed as a 13-million-row weight
    state = module.state_dict()
    state["1.5.weight"] = torch.zeros(1).expand(13_000_000, 84)
    state["1.5.bias"] = torch.zeros(1).expand(13_000_000)
    torch.save({"arch": "lenet5", "state_dict": state}, strided)
    shape = sandbox.files / "shape.pt"
    torch.save({"arch": "lenet5", "input_shape": [1, 1, 100000, 100000], "state_dict": module.state_dict()}, shape)
    unchanged = sandbox.snapshot()
    for model, reason in ((path, "does not fit"), (strided, "declare"), (shape, "input 'input'")):
        assert model.stat().st_size < 1 << 20
        sandbox.assert_refused(sandbox.cli("info", model), model, reason=reason)
    unchanged()


def test_external_data_that_is_not_really_there_is_refused(sandbox):
    from onnx import TensorProto, helper

    for name, elements, file_size in (
        ("over2gb", 1_100_000_000, 4_400_000_000),
        ("sparse", 400_000_000, 1_600_000_000),
    ):
        folder = sandbox.files / name
        folder.mkdir()
        weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[elements])
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", str(elements * 4))):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
        sandbox.save_graph(
            folder / "model.onnx",
            [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [elements])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [elements])],
            [weight],
        )
        with open(folder / "weights.bin", "wb") as handle:
            handle.truncate(file_size)  # sparse: gigabytes of apparent size, nothing on disk
    unchanged = sandbox.snapshot()
    over = sandbox.cli("info", sandbox.files / "over2gb" / "model.onnx")
    sandbox.assert_refused(over, "model.onnx", reason="over 2 GB")
    sparse = sandbox.cli("info", sandbox.files / "sparse" / "model.onnx")
    sandbox.assert_refused(sparse, "model.onnx", reason="sparse")
    unchanged()


def deflate_bomb_npz(path: Path, rows: int, cols: int) -> Path:
    """An .npz whose x.npy inflates ~1000-fold: deflate blocks of zeros, repeated (built in under a second)."""
    from numpy.lib import format as npy

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)})
    head, chunk = header.getvalue(), 16 << 20
    total = rows * cols * 4
    assert total % chunk == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    repeats = total // chunk
    crc = zlib.crc32(head)
    zeros = bytes(chunk)
    for _ in range(repeats):
        crc = zlib.crc32(zeros, crc)
    packed, size, name = len(first) + repeats * len(block) + len(tail), len(head) + total, b"x.npy"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, packed, size, len(name), 0) + name)
        handle.write(first)
        for _ in range(repeats):
            handle.write(block)
        handle.write(tail)
        directory_at = handle.tell()
        directory = (
            struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, packed, size, len(name), 0, 0, 0, 0, 0, 0
            )
            + name
        )
        handle.write(directory)
        handle.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), directory_at, 0))
    return path


def test_an_npz_that_inflates_to_gigabytes_is_refused(sandbox):
    model = sandbox.files / "model.onnx"
    from onnx import TensorProto, helper

    sandbox.save_graph(
        model,
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    bomb = deflate_bomb_npz(sandbox.files / "bomb.npz", 64 << 20, 4)  # 1 GiB of zeros in ~1 MB
    liar = sandbox.files / "liar.npz"  # a header that declares 2.3 GB over 64 bytes of data
    header = io.BytesIO()
    from numpy.lib import format as npy

    npy.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (575_000_000, 1)})
    import zipfile

    with zipfile.ZipFile(liar, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(64))
    unchanged = sandbox.snapshot()
    assert bomb.stat().st_size < 1_100_000
    sandbox.assert_refused(sandbox.cli("eval", model, "--data", bomb), bomb, reason="decompression bomb")
    sandbox.assert_refused(sandbox.cli("eval", model, "--data", liar), liar, reason="declares")
    unchanged()


def write_png(path: Path, width: int, height: int) -> Path:
    """A real grayscale PNG of zeros: hundreds of megapixels in a few hundred kilobytes."""
    row = bytes(width + 1)  # filter byte + pixels
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_a_400_megapixel_png_is_refused_before_decoding(sandbox):
    import torch

    from workbench.archs import get_architecture

    model = sandbox.files / "lenet.pt"
    module = get_architecture("lenet5").build(num_classes=2, in_channels=1)
    torch.save(
        {"arch": "lenet5", "arch_kwargs": {"num_classes": 2, "in_channels": 1}, "state_dict": module.state_dict()},
        model,
    )
    for label in ("a", "b"):
        (sandbox.files / "images" / label).mkdir(parents=True)
    png = write_png(sandbox.files / "images" / "a" / "huge.png", 20000, 20000)
    write_png(sandbox.files / "images" / "b" / "small.png", 28, 28)
    assert png.stat().st_size < 1 << 20
    unchanged = sandbox.snapshot()
    run = sandbox.cli("eval", model, "--data", sandbox.files / "images", "--grayscale", "--resize", "28,28")
    sandbox.assert_refused(run, png, reason="megapixels")
    unchanged()
