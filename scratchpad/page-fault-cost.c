// First touch of fresh anonymous memory, per 4 KiB page (mmap, touch one byte per page, munmap, 4 rounds): gcc -O2 -o /tmp/pf scratchpad/page-fault-cost.c && /tmp/pf MiB
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
int main(int c,char**v){size_t n=(size_t)atoi(v[1])<<20;
for(int r=0;r<4;r++){char*p=mmap(0,n,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);double t=now();for(size_t i=0;i<n;i+=4096)p[i]=1;double d=now()-t;
double t2=now();for(size_t i=0;i<n;i+=4096)p[i]=2;double d2=now()-t2;
printf("round %d: first touch %.1f ms (%.2f us/page), second %.2f ms\n",r,d,d*1000/(n>>12),d2);munmap(p,n);}
}
