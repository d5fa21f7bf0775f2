#!/usr/bin/env python3
# Redis CPU per PUBLISH by the number of subscribed connections (nodes), for
# docs/SCALING.md: a redis-server of our own on 127.0.0.1:16412 (no persistence),
# redis-cli SUBSCRIBE as the nodes, redis-benchmark (pinned to CPU 1) publishing.
#   python3 bench/redis-publish-cost.py
import signal, subprocess, time
P=16412
rs=subprocess.Popen(['redis-server','--port',str(P),'--bind','127.0.0.1','--save',''],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
time.sleep(0.5)
def ticks(pid):
    f=open(f'/proc/{pid}/stat').read().rsplit(')',1)[1].split()
    return int(f[11])+int(f[12])
payload='bx1 n1~0011223344556677 123\n{"channel":"/x","data":{"t":1,"p":"'+'x'*64+'"}}'
for subs in [0,1,3,10,30]:
    cl=[subprocess.Popen(['redis-cli','-p',str(P),'SUBSCRIBE','bayeux:/x'],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL) for _ in range(subs)]
    time.sleep(0.5)
    n=200000
    c0=ticks(rs.pid)
    out=subprocess.run(['taskset','-c','1','redis-benchmark','-p',str(P),'-n',str(n),'-c','4','-P','16','-q','PUBLISH','bayeux:/x',payload],capture_output=True,text=True,timeout=120).stdout
    c1=ticks(rs.pid)
    rps=[l for l in out.replace('\r','\n').split('\n') if 'requests per second' in l][-1].split(':')[-1].strip()
    print(f'subscribed connections {subs:3d}: {rps}; Redis CPU {(c1-c0)*10e6/n:.0f} ns per PUBLISH')
    for c in cl: c.send_signal(signal.SIGTERM)
    for c in cl: c.wait()
rs.terminate(); rs.wait()
