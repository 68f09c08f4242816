"""Zero the GPU code in libfaiss.so that an sm_90 GPU never loads, so the library compresses to ~14 MB.

    python prune_fatbin.py faiss/libfaiss.so libfaiss.pruned.so [90]

FAISS' GPU wheel carries its kernels for sm_70, 75, 80, 86, 89 and 90 (compressed ELF images) plus
compute_90 PTX in the ``.nv_fatbin`` section (179 MB of its 199 MB). Every entry's payload except the
sm_90 ELF image is overwritten with zeros in place: the headers and every offset stay as they were,
and the CUDA runtime loads the exact-match sm_90 image on an H100/H200. Checked by parsing: each blob's
entries chain to its declared size. For a device-check payload only; never for a machine of another
architecture.
"""
import collections
import struct
import subprocess
import sys

path, out = sys.argv[1], sys.argv[2]
keep = int(sys.argv[3]) if len(sys.argv) > 3 else 90
data = bytearray(open(path, "rb").read())
line = next(l for l in subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True).stdout.splitlines()
            if ".nv_fatbin" in l)
fields = line.split("]")[1].split()
off, size = int(fields[3], 16), int(fields[4], 16)
pos, end = off, off + size
kept, zeroed, blobs = collections.Counter(), 0, 0
while pos < end:
    if struct.unpack_from("<I", data, pos)[0] != 0xBA55ED50:  # blobs are 8-byte aligned, zero padding between
        pos += 8
        continue
    _magic, _version, header, fat_size = struct.unpack_from("<IHHQ", data, pos)
    blobs += 1
    p, blob_end = pos + header, pos + header + fat_size
    while p < blob_end:
        kind, _u, entry_header, payload = struct.unpack_from("<HHIQ", data, p)  # kind 1: PTX, 2: ELF
        arch = struct.unpack_from("<I", data, p + 28)[0]
        if kind == 2 and arch == keep:
            kept[arch] += payload
        else:
            data[p + entry_header:p + entry_header + payload] = bytes(payload)
            zeroed += payload
        p += entry_header + payload
    assert p == blob_end, (p, blob_end)
    pos = blob_end
open(out, "wb").write(data)
print(f"{blobs} fatbin blobs; kept {sum(kept.values()) / 1e6:.1f} MB of sm_{keep} images, zeroed {zeroed / 1e6:.1f} MB")
