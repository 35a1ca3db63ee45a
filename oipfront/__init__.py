"""The Open Inference Protocol front (KServe v2, as Triton serves it): REST on 127.0.0.1:8000
and gRPC (`inference.GRPCInferenceService`) on 127.0.0.1:8001 in front of TorchServe, so that
Triton's own clients (tritonclient.http, tritonclient.grpc, perf_analyzer) work unchanged.
TorchServe's tokens are added on this side; callers need the front's own key (auth.py)."""
