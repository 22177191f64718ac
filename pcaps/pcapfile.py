"""Minimal classic-pcap reading and writing (Ethernet, microsecond stamps).

The generators write captures through this instead of scapy's writer so the
bytes of a capture depend only on its frames and their timestamps, never on
the scapy version or the time of day.
"""

import struct

MAGIC_USEC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144


def write_pcap(path, records):
    """records: iterable of (timestamp in microseconds, frame bytes[, original length])."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", MAGIC_USEC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        for rec in records:
            ts_us, data = rec[0], bytes(rec[1])
            orig_len = rec[2] if len(rec) > 2 else len(data)
            fh.write(struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(data), orig_len))
            fh.write(data)


def read_pcap(path):
    """Returns [(timestamp in microseconds, frame bytes)] of a little- or
    big-endian microsecond or nanosecond Ethernet capture (what tcpdump -w
    writes)."""
    with open(path, "rb") as fh:
        blob = fh.read()
    magic_le = struct.unpack("<I", blob[:4])[0]
    if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
        magic = magic_le
    else:
        endian = ">"
        magic = struct.unpack(">I", blob[:4])[0]
        if magic not in (0xA1B2C3D4, 0xA1B23C4D):
            raise ValueError("%s: not a classic pcap file" % path)
    nano = magic == 0xA1B23C4D
    linktype = struct.unpack(endian + "I", blob[20:24])[0]
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError("%s: link type %d, expected Ethernet" % (path, linktype))
    out = []
    off = 24
    while off < len(blob):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", blob[off:off + 16])
        off += 16
        us = frac // 1000 if nano else frac
        out.append((sec * 1_000_000 + us, blob[off:off + incl]))
        off += incl
    return out
