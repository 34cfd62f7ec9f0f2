"""The trained model: architecture registry, the model package (.emd/.pth/.dlpk) and its ONNX file."""
