#!/usr/bin/env python3
"""Nimbus Cloud driven by Ansible's amazon.aws collection (Debian's `ansible`), as people
drive EC2: a playbook that asks who it is (STS GetCallerIdentity on the same endpoint),
finds the image, creates a key pair and a security group for ssh and http, launches an
instance with user data and waits for it, finds it again by its Name tag; then the page the
user data wrote is served at its public address and ssh with the key answers; a second run
of the same playbook changes nothing (idempotent); a last play terminates it.

usage: ansible_test.py NIMBUS_CLOUD NIMBUS NIMBUSD WORKDIR ansible   (exit 77: no ansible)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

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
        instance_type: t3.micro
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
    r = subprocess.run(["ansible-playbook", path], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, (name, r.stdout[-4000:], r.stderr[-2000:])
    with open(os.path.join(work, "result.json")) as f:
        return json.load(f)


def main():
    if not shutil.which("ansible-playbook"):
        print("ansible-playbook not installed: skipped")
        sys.exit(77)
    ct.configure(*sys.argv[1:4], sys.argv[5])
    cloud = ct.Cloud(zones="a")
    work = tempfile.mkdtemp(prefix="nimbus-ansible-")
    try:
        cloud.add_host("h1", "a", memory="1G")
        stamp = f"configured by ansible {os.getpid()}"
        user_data = f"#!/bin/sh\\necho '{stamp}' > /www/index.html\\n"
        text = PLAYBOOK.format(endpoint=cloud.endpoint, region=ct.REGION, work=work, user_data=user_data)
        out = play(work, text, "site.yml")
        assert len(out["instances"]) == 1 and out["changed"], out
        inst = out["instances"][0]
        ip = inst["public_ip_address"]
        ct.log(f"ansible-playbook: account {out['account']}, {inst['instance_id']} running at {ip}")
        ct.wait_for("the user data's page", lambda: stamp in ct.http_get(ip), timeout=120, interval=1)
        key = os.path.join(work, "key.pem")
        r = subprocess.run(["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"root@{ip}", "hostname"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.stdout, r.stderr)
        ct.log(f"the page is served and ssh -i key.pem answers ({r.stdout.strip()})")
        again = play(work, text, "site.yml")
        assert not again["changed"] and [i["instance_id"] for i in again["instances"]] == [inst["instance_id"]], again
        ct.log("the same playbook again: nothing changed")
        play(work, TERMINATE.format(endpoint=cloud.endpoint, region=ct.REGION), "down.yml")
        state = ct.boto3_client(cloud).describe_instances(InstanceIds=[inst["instance_id"]])
        assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated", state
        ct.log("terminated by the playbook")
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()
        shutil.rmtree(work, ignore_errors=True)
    ct.log("ansible: PASS")


if __name__ == "__main__":
    main()
