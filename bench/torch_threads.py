"""Runs a PyTorch peer with N intra-op threads. ../shared/peers/torch_mobilenet_speed.py pins torch to one
thread (torch.set_num_threads(1)) and is read-only, shared by every session, so its call is redirected to N;
the peer runs otherwise unchanged. Usage: torch_threads.py THREADS PEER [PEER ARGS...]"""
import runpy, sys, torch

threads = int(sys.argv[1])
if threads < 1:
    sys.exit(f'torch_threads.py: expected THREADS >= 1, got {threads}')
pin = torch.set_num_threads
torch.set_num_threads = lambda _requested: pin(threads)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
if torch.get_num_threads() != threads:
    sys.exit(f'torch_threads.py: expected torch to run {threads} threads, it runs {torch.get_num_threads()}')
