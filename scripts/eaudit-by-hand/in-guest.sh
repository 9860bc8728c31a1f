#!/bin/bash
# eAudit by hand in the guest.
now() { cut -d' ' -f1 /proc/uptime; }
cd /opt/eaudit
chmod +x eaudit ecapd
echo "== python3-bpfcc: $(dpkg-query -W -f='${Version}' python3-bpfcc); kernel $(uname -r)"
t0=$(now)
python3 eauditd.py -c /tmp/cap.ea -m EA_ -v 3 $ECAPD_OPTS 2>/tmp/ecapd.err &
ecapd=$!
echo "== ecapd pid $ecapd started at $t0"
until [ -e /tmp/cap.ea ]; do
    if ! kill -0 $ecapd 2>/dev/null; then echo "== ecapd died before the capture file:"; cat /tmp/ecapd.err; wait $ecapd; echo "exit $?"; exit 1; fi
    sleep 0.05
done
t1=$(now)
echo "== capture file appeared at $t1"
sleep 1
ls -la /tmp/cap.ea
t2=$(now)
openloop ${THREADS:-2} ${COUNT:-1000}
t3=$(now)
echo "== openloop from $t2 to $t3"
sleep 1
ls -la /tmp/cap.ea
kill -INT $ecapd
wait $ecapd
echo "== ecapd exit status $? at $(now)"
echo "== ecapd stderr:"; cat /tmp/ecapd.err
ls -la /tmp/cap.ea
./eaudit -I /tmp/cap.ea -P /tmp/cap.txt -R /tmp/cap.rec 2>&1 | tail -20
echo "== eaudit exit $?"
ls -la /tmp/cap.txt
echo "== head of print"
head -5 /tmp/cap.txt
echo "== lines mentioning hostname: $(grep -c hostname /tmp/cap.txt)"
grep hostname /tmp/cap.txt | head -5
echo "== record types"; awk '{print $3}' /tmp/cap.txt | sort | uniq -c | sort -rn | head -30

echo "== records per tid of openloop:"; grep -o "tid=[0-9]*: open(file=\"/etc/hostname\"" /tmp/cap.txt | sort | uniq -c; echo "== records of /etc/hostname without tid= (a group leader's): $(grep "/etc/hostname" /tmp/cap.txt | grep -vc "tid=")"
exit 0
