// Cost of a syscall (getppid), a 32 KiB write to /dev/null, and 32 KiB pwrites into a fresh and a cached file (in the current directory): gcc -O2 -o /tmp/sc scratchpad/syscall-cost.c && /tmp/sc
#include <stdio.h>
#include <unistd.h>
#include <time.h>
#include <sys/syscall.h>
#include <fcntl.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
int main(){int n=1000000;double t=now();for(int i=0;i<n;i++)syscall(SYS_getppid);double d=now()-t;printf("getppid: %.0f ns/call\n",d/n);
char buf[32768]={0};int fd=open("/dev/null",O_WRONLY);t=now();for(int i=0;i<n;i++)write(fd,buf,32768);d=now()-t;printf("write /dev/null 32K: %.0f ns/call\n",d/n);
int f=open("sysc.bin",O_WRONLY|O_CREAT|O_TRUNC,0644);t=now();for(int i=0;i<8192;i++)pwrite(f,buf,32768,(long)i*32768);d=now()-t;printf("pwrite 32K fresh file (256 MiB): %.0f ns/call, %.2f ns/B\n",d/8192,d/8192/32768);
t=now();for(int i=0;i<8192;i++)pwrite(f,buf,32768,(long)i*32768);d=now()-t;printf("pwrite 32K rewrite (cached pages): %.0f ns/call, %.2f ns/B\n",d/8192,d/8192/32768);
unlink("sysc.bin");}
