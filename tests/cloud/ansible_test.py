#!/usr/bin/env python3
"""Nimbus Cloud driven by Ansible's amazon.aws collection (Debian's `ansible`), as people
drive EC2: a playbook that asks who it is (STS GetCallerIdentity on the same endpoint),
finds the image, creates a key pair and a security group for ssh and http, launches an
instance with user data and waits for it, finds it again by its Name tag; then the page the
user data wrote is served at its public address and ssh with the key answers; a second run
of the same playbook changes nothing (idempotent); a last play terminates it.

usage: ansible_test.py NIMBUS_CLOUD NIMBUS NIMBUSD WORKDIR ansible
Root (nimbusd's cgroups); exit 77 (skipped) without root or ansible-playbook.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as ct  # noqa: E402

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: /usr/bin/python3
    conn: &conn
      endpoint_url: "{endpoint}"
      region: {region}
      access_key: AKIDNIMBUSTEST
      secret_key: nimbus-secret
  tasks:
    - amazon.aws.aws_caller_info:
        <<: *conn
      register: me
    - amazon.aws.ec2_ami_info:
        <<: *conn
      register: amis
    - amazon.aws.ec2_key:
        <<: *conn
        name: ansible-key
        key_type: ed25519
      register: key
    - copy:
        content: "{{{{ key.key.private_key }}}}"
        dest: "{work}/key.pem"
        mode: "0600"
      when: key.changed
    - amazon.aws.ec2_security_group:
        <<: *conn
        name: web
        description: ssh and http
        rules:
          - proto: tcp
            ports: [22, 80]
            cidr_ip: 0.0.0.0/0
    - amazon.aws.ec2_instance:
        <<: *conn
        name: ansible-web
        image_id: "{{{{ amis.images[0].image_id }}}}"
        instance_type: t3.nano
        key_name: ansible-key
        security_group: web
        user_data: "{user_data}"
        wait: true
        state: running
      register: inst
    - amazon.aws.ec2_instance_info:
        <<: *conn
        filters:
          "tag:Name": ansible-web
          instance-state-name: running
      register: info
    - copy:
        content: "{{{{ {{'account': me.account, 'changed': inst.changed, 'instances': info.instances}} | to_json }}}}"
        dest: "{work}/result.json"
"""

TERMINATE = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: /usr/bin/python3
  tasks:
    - amazon.aws.ec2_instance:
        endpoint_url: "{endpoint}"
        region: {region}
        access_key: AKIDNIMBUSTEST
        secret_key: nimbus-secret
        filters:
          "tag:Name": ansible-web
        state: absent
        wait: true
"""


def play(work, text, name):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(text)
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_HOME=os.path.join(work, "ansible-home"))
    t0 = time.monotonic()
    r = subprocess.run(["ansible-playbook", path], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, (name, r.stdout[-4000:], r.stderr[-2000:])
    ct.log(f"ansible-playbook {name}: {time.monotonic() - t0:.1f} s")
    with open(os.path.join(work, "result.json")) as f:
        return json.load(f)


def main():
    if os.geteuid() != 0 or not shutil.which("ansible-playbook"):
        print("skipped: needs root (nimbusd's cgroups) and ansible-playbook (Debian's ansible)")
        sys.exit(77)
    t_start = time.monotonic()
    ct.configure(*sys.argv[1:4], sys.argv[5])
    cloud = ct.Cloud(zones="a")
    work = tempfile.mkdtemp(prefix="nimbus-ansible-")
    ok = False
    try:
        cloud.add_host("h1", "a", memory="1G")
        stamp = f"configured by ansible {os.getpid()}"
        user_data = f"#!/bin/sh\\necho '{stamp}' > /www/index.html\\n"
        text = PLAYBOOK.format(endpoint=cloud.endpoint, region=ct.REGION, work=work, user_data=user_data)
        out = play(work, text, "site.yml")
        assert len(out["instances"]) == 1 and out["changed"], out
        inst = out["instances"][0]
        ip = inst["public_ip_address"]
        # ec2_instance_info's view: both addresses, the group the play made, the Name tag.
        assert ip.startswith(ct.PREFIX + "."), inst
        assert inst["private_ip_address"].startswith("172.31."), inst
        assert inst["tags"] == {"Name": "ansible-web"}, inst["tags"]
        assert [g["group_name"] for g in inst["security_groups"]] == ["web"], inst["security_groups"]
        assert inst["key_name"] == "ansible-key" and inst["instance_type"] == "t3.nano", inst
        ct.log(f"ansible-playbook: account {out['account']}, {inst['instance_id']} running at {ip} "
               f"({inst['private_ip_address']} inside)")
        ct.wait_for("the user data's page", lambda: stamp in ct.http_get(ip), timeout=120, interval=1)
        key = os.path.join(work, "key.pem")

        def ssh_hostname():
            r = subprocess.run(["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o",
                                "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                "-o", "LogLevel=ERROR", f"root@{ip}", "hostname"],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
            return r

        r = ct.wait_for("ssh -i key.pem", ssh_hostname, timeout=60, interval=1)
        ct.log(f"the page is served and ssh -i key.pem answers ({r.stdout.strip()})")
        again = play(work, text, "site.yml")
        assert not again["changed"] and [i["instance_id"] for i in again["instances"]] == [inst["instance_id"]], again
        ct.log("the same playbook again: nothing changed")
        play(work, TERMINATE.format(endpoint=cloud.endpoint, region=ct.REGION), "down.yml")
        state = ct.boto3_client(cloud).describe_instances(InstanceIds=[inst["instance_id"]])
        assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated", state
        ct.log("terminated by the playbook")
        ok = True
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()
        shutil.rmtree(work, ignore_errors=True)
        if ok:  # the host's image and disk (~70 MB); a failed run keeps them to look at
            shutil.rmtree(cloud.dir, ignore_errors=True)
    ct.log(f"ansible: PASS in {time.monotonic() - t_start:.1f} s")


if __name__ == "__main__":
    main()
