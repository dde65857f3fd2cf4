"""Runs an exported ONNX model with onnxruntime for the ONNX export tests (segdist's tests call
this only where onnxruntime imports; they say so when it does not).

    python3 run_onnx.py model.onnx image.npy logits.npy probabilities.npy

Checks the model with onnx's checker (with shape inference) when the onnx package is there.
"""
import sys

import numpy as np
import onnxruntime as ort

model, image, logits_path, probabilities_path = sys.argv[1:5]
try:
    import onnx
except ImportError:
    onnx = None
if onnx is not None:
    onnx.checker.check_model(onnx.load(model), full_check=True)
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
logits, probabilities = session.run(["logits", "probabilities"], {"image": np.load(image)})
np.save(logits_path, logits)
np.save(probabilities_path, probabilities)
print("onnxruntime", ort.__version__, "ran", model, "->", logits.shape)
