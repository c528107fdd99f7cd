"""Loads this bundle's model exactly as Model Workbench measured it: the runtime settings come from
manifest.json ("runtime"), which `workbench verify` reads too. Usage: python run.py"""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MANIFEST = json.loads((HERE / "manifest.json").read_text())
RUNTIME = MANIFEST["runtime"]


def _quantize(x, details):
    """Float features to the file's integer input type (full-int8 LiteRT / TFLM files)."""
    scale, zero = details["quantization"]
    if np.dtype(details["dtype"]).kind in "iu" and scale:
        info = np.iinfo(details["dtype"])
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(details["dtype"])
    return x.astype(details["dtype"])


def _dequantize(y, details):
    scale, zero = details["quantization"]
    if np.dtype(details["dtype"]).kind in "iu" and scale:
        return (y.astype(np.float32) - zero) * scale
    return y


def _litert(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=RUNTIME["threads"])
    key = next(iter(interpreter.get_signature_list()))
    runner = interpreter.get_signature_runner(key)
    names = interpreter.get_signature_list()[key]
    inputs, outputs = runner.get_input_details(), runner.get_output_details()

    def run(feeds):
        # The model's input names, in order, are the file's signature inputs in order (batch 1).
        values = [feeds[name] for name in RUNTIME["input_names"]]
        result = runner(**{n: _quantize(v, inputs[n]) for n, v in zip(names["inputs"], values, strict=True)})
        return [_dequantize(result[n], outputs[n]) for n in names["outputs"]]

    return run


def _tflm(path):
    from ai_edge_litert.interpreter import Interpreter
    from tflite_micro.python.tflite_micro import runtime

    lite = Interpreter(model_path=str(path))  # only to read the quantization of the inputs and outputs
    inputs, outputs = lite.get_input_details(), lite.get_output_details()
    interpreter = runtime.Interpreter.from_file(str(path))

    def run(feeds):
        for index, name in enumerate(RUNTIME["input_names"]):
            interpreter.set_input(_quantize(feeds[name], inputs[index]), index)
        interpreter.invoke()
        return [_dequantize(interpreter.get_output(i), d) for i, d in enumerate(outputs)]

    return run


def _executorch(path):
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(path)).load_method("forward")
    return lambda feeds: [
        t.numpy() for t in method.execute([torch.from_numpy(feeds[n]) for n in RUNTIME["input_names"]])
    ]


def load():
    """Returns run(feeds: dict[str, np.ndarray]) -> list of outputs."""
    loaders = {"litert": _litert, "tflite-micro": _tflm, "executorch": _executorch}
    if RUNTIME["runtime"] in loaders:
        return loaders[RUNTIME["runtime"]](HERE / RUNTIME["file"])
    if RUNTIME["runtime"] == "openvino":
        import openvino as ov

        properties = {"INFERENCE_NUM_THREADS": str(RUNTIME["threads"]), **RUNTIME["config"]}
        compiled = ov.Core().compile_model(str(HERE / RUNTIME["file"]), RUNTIME["provider"], properties)
        request = compiled.create_infer_request()
        return lambda feeds: [np.array(request.infer(feeds)[port]) for port in compiled.outputs]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = RUNTIME["threads"]
    options.inter_op_num_threads = 1
    options.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[RUNTIME["graph_optimization"]]
    for key, value in RUNTIME["config"].items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(HERE / RUNTIME["file"]), options, providers=[RUNTIME["provider"]])
    return lambda feeds: session.run(None, feeds)


if __name__ == "__main__":
    run = load()
    # Replace the zeros with inputs preprocessed as manifest.json's "preprocessing" says.
    feeds = {i["name"]: np.zeros(MANIFEST["input_shapes"][i["name"]], np.float32) for i in MANIFEST["inputs"]}
    print(run(feeds)[0])
