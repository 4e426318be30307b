"""Socket filters on the socket a test passes as fd 3, for the SYN gate tests.

  read                 print the classic filter (SO_GET_FILTER) as JSON:
                       {"program": [[code, jt, jf, k], ...]} (empty: no filter)
                       or {"errno": "EACCES"} when it cannot be read back
  attach PROGRAM_JSON  SO_ATTACH_FILTER with [[code, jt, jf, k], ...]
  attach-ebpf          load an eBPF socket filter that passes every packet and
                       attach it with SO_ATTACH_BPF
  lock                 SO_LOCK_FILTER: the filter can no longer be changed

Python's socket.getsockopt cannot read SO_GET_FILTER (its optlen counts
instructions, not bytes), so libc is called through ctypes. The fd is only
borrowed: it is never closed or shut down here.
"""
import ctypes
import errno
import json
import os
import struct
import sys

SOL_SOCKET = 1
SO_ATTACH_FILTER = 26
SO_GET_FILTER = SO_ATTACH_FILTER
SO_LOCK_FILTER = 44
SO_ATTACH_BPF = 50
SYS_BPF = 321  # x86_64
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SOCKET_FILTER = 1
FD = 3

libc = ctypes.CDLL(None, use_errno=True)


class SockFilter(ctypes.Structure):
    _fields_ = [('code', ctypes.c_uint16), ('jt', ctypes.c_uint8), ('jf', ctypes.c_uint8), ('k', ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.POINTER(SockFilter))]


def fail(call):
    err = ctypes.get_errno()
    print(json.dumps({'errno': errno.errorcode.get(err, str(err)), 'call': call}))
    sys.exit(0)


def setsockopt(name, value, size):
    if libc.setsockopt(FD, SOL_SOCKET, name, value, ctypes.c_uint32(size)) != 0:
        fail('setsockopt')


def read():
    length = ctypes.c_uint32(0)
    if libc.getsockopt(FD, SOL_SOCKET, SO_GET_FILTER, None, ctypes.byref(length)) != 0:
        fail('getsockopt')
    program = (SockFilter * max(length.value, 1))()
    if length.value > 0 and libc.getsockopt(FD, SOL_SOCKET, SO_GET_FILTER, program, ctypes.byref(length)) != 0:
        fail('getsockopt')
    print(json.dumps({'program': [[i.code, i.jt, i.jf, i.k] for i in program[:length.value]]}))


def attach(text):
    instructions = json.loads(text)
    program = (SockFilter * len(instructions))(*[SockFilter(*i) for i in instructions])
    fprog = SockFprog(len(instructions), program)
    setsockopt(SO_ATTACH_FILTER, ctypes.byref(fprog), ctypes.sizeof(fprog))
    print(json.dumps({'ok': True}))


def attach_ebpf():
    # r0 = 0xffff (pass up to 64 KiB of each packet); exit
    insns = struct.pack('<BBhi', 0xb7, 0, 0, 0xffff) + struct.pack('<BBhi', 0x95, 0, 0, 0)
    code = ctypes.create_string_buffer(insns)
    license = ctypes.create_string_buffer(b'GPL')
    attr = ctypes.create_string_buffer(128)
    struct.pack_into('<IIQQ', attr, 0, BPF_PROG_TYPE_SOCKET_FILTER, len(insns) // 8,
                     ctypes.addressof(code), ctypes.addressof(license))
    libc.syscall.restype = ctypes.c_long
    prog = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(BPF_PROG_LOAD), attr, ctypes.c_uint(128))
    if prog < 0:
        fail('bpf')
    value = ctypes.c_int(prog)
    setsockopt(SO_ATTACH_BPF, ctypes.byref(value), 4)
    os.close(prog)
    print(json.dumps({'ok': True}))


def lock():
    value = ctypes.c_int(1)
    setsockopt(SO_LOCK_FILTER, ctypes.byref(value), 4)
    print(json.dumps({'ok': True}))


command = sys.argv[1]
if command == 'read':
    read()
elif command == 'attach':
    attach(sys.argv[2])
elif command == 'attach-ebpf':
    attach_ebpf()
elif command == 'lock':
    lock()
else:
    sys.exit('unknown command ' + command)
