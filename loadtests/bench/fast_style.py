"""fast_style at 512x512: in-process TransformerNet throughput against throughput served by
TorchServe at saturation, in the same run; batching on (batchSize 8, as shipped) against off
(batchSize 1, a rebuilt archive); the worker's peak RSS while serving.

    python -m loadtests.bench.fast_style --out fast_style.json [--quick]
"""

import io
import threading
import time

import requests
import skimage.data
import torch
from PIL import Image

from handlers.common.images import encode_image
from imagelab.fast_style.stylize import images_to_batch, stylize
from imagelab.fast_style.transformer_net import TransformerNet
from loadtests.bench.measure import PeakRss, section_args, time_calls, write_results
from loadtests.bench.serving import running_server, worker_pids

SIDE_PX = 512
SHIPPED_BATCH = 8
IMAGES_PER_ROUND = 2 * SHIPPED_BATCH  # the same images per measurement with batching on or off


def photo_512() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut())  # 512x512 RGB


def in_process(runs: int) -> dict:
    """Images/s of the network alone at batch 8 and 1, and the per-image codec cost the server
    adds around it (JPEG decode, PNG encode), all with this process's torch threads."""
    torch.manual_seed(0)
    model = TransformerNet().eval()
    photo = photo_512()
    results = {}
    for batch_size in (SHIPPED_BATCH, 1):
        batch = images_to_batch([photo] * batch_size)  # (B, 3, 512, 512)
        timing = time_calls(lambda batch=batch: stylize(model, batch), runs)
        results[f"batch{batch_size}"] = {"timing": timing, "images_per_s": batch_size / timing.median_s}
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    jpeg = buffer.getvalue()

    def codec():
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        encode_image(image, "png", 90)

    results["codec_s_per_image"] = time_calls(codec, 5).median_s
    return results


def saturate(url: str, key: str, clients: int, requests_per_client: int) -> dict:
    """`clients` threads each posting the photo `requests_per_client` times back to back; a
    fixed count rather than a fixed time, so whole batches finish inside the measurement (at
    batch 8 one batch takes many seconds here, and a time window would cut one in half)."""
    buffer = io.BytesIO()
    photo_512().save(buffer, format="JPEG", quality=90)
    body = buffer.getvalue()
    done, failed = [], []

    def client():
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        for _ in range(requests_per_client):
            answer = session.post(
                f"{url}/predictions/fast_style",
                files={"image": ("a.jpg", body, "image/jpeg")},
                data={"style": "candy", "max_side_px": str(SIDE_PX)},
                timeout=600,
            )
            (done if answer.status_code == 200 else failed).append(time.perf_counter())

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "duration_s": elapsed,
        "images": len(done),
        "failures": len(failed),
        "images_per_s": len(done) / elapsed,
    }


def served(batch_size: int, rounds: int) -> dict:
    """A TorchServe with the fast_style archive rebuilt at this batchSize, saturated by twice
    as many clients as the batch holds, so a full batch is always waiting."""
    changes = None if batch_size == SHIPPED_BATCH else {"batchSize": batch_size}
    clients = 2 * batch_size
    with running_server(("fast_style",), changes) as server:
        key = server.keys().inference
        saturate(server.inference_url, key, clients=batch_size, requests_per_client=1)  # warm-up: one batch
        pid = worker_pids(server, "fast_style")[0]
        with PeakRss(pid) as rss:
            result = saturate(
                server.inference_url, key, clients, requests_per_client=IMAGES_PER_ROUND * rounds // clients
            )
        result["worker_peak_rss_mib"] = rss.peak_mib
        result["batch_size"] = batch_size
    return result


def main() -> None:
    args = section_args(__doc__.splitlines()[0])
    runs, rounds = (1, 1) if args.quick else (3, 3)
    results = {"side_px": SIDE_PX, "quick": args.quick}
    # In-process before and after serving: the machine is shared, so the spread between the
    # two says how much the load drifted while the servers ran.
    results["in_process_before"] = in_process(runs)
    results["served_batch8"] = served(SHIPPED_BATCH, rounds)
    results["served_batch1"] = served(1, rounds)
    results["in_process_after"] = in_process(runs)
    write_results(args.out, results)


if __name__ == "__main__":
    main()
