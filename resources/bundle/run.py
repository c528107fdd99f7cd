"""Loads this bundle's model exactly as Model Workbench measured it: the runtime settings come from
manifest.json ("runtime"), which `workbench verify` reads too. Usage: python run.py"""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MANIFEST = json.loads((HERE / "manifest.json").read_text())
RUNTIME = MANIFEST["runtime"]


def load():
    """Returns run(feeds: dict[str, np.ndarray]) -> list of outputs."""
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
