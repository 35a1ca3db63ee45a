"""What every handler shares, with no TorchServe import: request decoding for every encoding
of API.md, image decoding and encoding, typed request errors, field parsing, batching helpers
and the batch runner that answers each request on its own."""
