// Kernel cost of loopback TCP in the current network namespace, both ends in it as in a pod: (a) connect + one
// request/response + close, (b) ping-pong on one connection; wall and CPU per op. CPU of (a) is the client's alone; the
// server child is reaped at the end, so (b) also carries the server's CPU of both parts. Same split in both namespaces.
// Loopback only. Compare the host with a fresh namespace (root), alternating:
//   gcc -O2 -o /tmp/nsloop bench/pods/netns-loopback.c
//   /tmp/nsloop 20000; unshare --net sh -c 'ip link set lo up; /tmp/nsloop 20000'
// (docs/benchmarks.md, "Pods round 9": 29-32 µs vs 29-30 µs per connect+request+close, 40-43 vs 40 µs per ping-pong.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
static double cpu(void){ struct rusage a,b; getrusage(RUSAGE_SELF,&a); getrusage(RUSAGE_CHILDREN,&b);
  return a.ru_utime.tv_sec+a.ru_utime.tv_usec/1e6+a.ru_stime.tv_sec+a.ru_stime.tv_usec/1e6+b.ru_utime.tv_sec+b.ru_utime.tv_usec/1e6+b.ru_stime.tv_sec+b.ru_stime.tv_usec/1e6; }
static double now(void){ struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec/1e9; }
int main(int argc,char**argv){ int n=atoi(argv[1]); const char* ip=argc>2?argv[2]:"127.0.0.1";
  int l=socket(AF_INET,SOCK_STREAM,0); int one=1; setsockopt(l,SOL_SOCKET,SO_REUSEADDR,&one,4);
  struct sockaddr_in a={0}; a.sin_family=AF_INET; inet_pton(AF_INET,ip,&a.sin_addr); a.sin_port=0;
  if(bind(l,(void*)&a,sizeof a)){perror("bind");return 1;} listen(l,4096); socklen_t sl=sizeof a; getsockname(l,(void*)&a,&sl);
  pid_t p=fork(); char buf[512];
  if(p==0){ for(;;){ int c=accept(l,0,0); if(c<0) _exit(0); int r; while((r=read(c,buf,sizeof buf))>0){ if(buf[0]=='Q'){_exit(0);} write(c,buf,r);} close(c);} }
  double c0=cpu(), t0=now();
  for(int i=0;i<n;i++){ int s=socket(AF_INET,SOCK_STREAM,0); if(connect(s,(void*)&a,sizeof a)){perror("connect");return 1;} write(s,"GET x\n",6); read(s,buf,sizeof buf); close(s);}  
  double c1=cpu(), t1=now();
  int s=socket(AF_INET,SOCK_STREAM,0); connect(s,(void*)&a,sizeof a); setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,4);
  for(int i=0;i<n;i++){ write(s,"GET x\n",6); read(s,buf,sizeof buf);} 
  write(s,"Q",1); close(s); waitpid(p,0,0);
  double c2=cpu(), t2=now();
  printf("conn+req+close: %.1f us cpu, %.1f us wall | ping-pong: %.1f us cpu, %.1f us wall (per op)\n",(c1-c0)*1e6/n,(t1-t0)*1e6/n,(c2-c1)*1e6/n,(t2-t1)*1e6/n);
}
