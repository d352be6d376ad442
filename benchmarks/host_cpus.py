"""Host vCPUs needed per TPU chip to feed EfficientNet b0-b7, from measured input-pipeline CPU cost.

The method of benchmarks/README.md ("Scaling on paper"): a chip trains peak × utilisation / (6 × multiply-adds)
images per second (forward + backward ≈ 3 × forward, 2 FLOPs per multiply-add); the host spends
cpu_ms_per_image × (resolution / measured size)² per image (resize and augmentation scale with output pixels,
JPEG decode does not: an upper bound), and only a share of its vCPUs is usable for tf.data. vCPUs needed per
chip = chip images/s × CPU seconds per image / usable share.

Inputs are the cpu_ms_per_image figures of benchmarks/input_pipeline.py (one per configuration, at --size):

  python benchmarks/host_cpus.py --cpu_ms autoaugment=3.56 device_host=2.4 none=3.11
"""

import argparse

# Multiply-adds per image (python -m efficientnet.summary, README's family table) and native resolution.
FAMILY = {
    "b0": (0.39e9, 224),
    "b1": (0.69e9, 240),
    "b2": (0.99e9, 260),
    "b3": (1.83e9, 300),
    "b4": (4.39e9, 380),
    "b5": (10.27e9, 456),
    "b6": (19.07e9, 528),
    "b7": (37.75e9, 600),
}
# bfloat16 peak per chip (Google Cloud TPU documentation) and vCPUs per chip of the hosts (benchmarks/README.md).
CHIPS = {"v4": (275e12, 60), "v5e": (197e12, 28)}


def chip_images_per_sec(macs, peak, utilisation):
    return peak * utilisation / (6.0 * macs)


def vcpus_needed(images_per_sec, cpu_ms_at_size, size, resolution, usable):
    return images_per_sec * cpu_ms_at_size * (resolution / size) ** 2 / 1000.0 / usable


def table(cpu_ms, size, utilisation, usable):
    """Markdown rows: variant, chip, chip img/s, then vCPUs needed per chip for each configuration of cpu_ms
    (with the host/compute ratio: vCPUs needed / vCPUs a chip has)."""
    names = list(cpu_ms)
    lines = [
        "| model | TPU | chip can train (img/s) | "
        + " | ".join(f"vCPUs per chip, {name} (× host)" for name in names)
        + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for variant, (macs, resolution) in FAMILY.items():
        for chip, (peak, chip_vcpus) in CHIPS.items():
            rate = chip_images_per_sec(macs, peak, utilisation)
            cells = []
            for name in names:
                need = vcpus_needed(rate, cpu_ms[name], size, resolution, usable)
                cells.append(f"{need:,.0f} ({need / chip_vcpus:.2f})")
            lines.append(f"| {variant} | {chip} | {rate:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu_ms",
        nargs="+",
        required=True,
        metavar="CONFIG=MS",
        help="cpu_ms_per_image per configuration, measured at --size",
    )
    parser.add_argument("--size", type=int, default=224, help="image size of the measurement")
    parser.add_argument("--utilisation", type=float, default=0.25, help="model FLOPs utilisation of the chip")
    parser.add_argument("--usable", type=float, default=0.75, help="share of host vCPUs usable by tf.data")
    args = parser.parse_args(argv)
    cpu_ms = {}
    for item in args.cpu_ms:
        name, _, value = item.partition("=")
        cpu_ms[name] = float(value)
    print(table(cpu_ms, args.size, args.utilisation, args.usable))


if __name__ == "__main__":
    main()
