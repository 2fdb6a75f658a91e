#!/usr/bin/env python3
"""PUT argv[2] as a JSON body to the URL argv[1]; print "STATUS BODY" (stdlib only)."""

import sys
import urllib.error
import urllib.request

req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="PUT",
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=60) as resp:
        print(resp.status, resp.read().decode())
except urllib.error.HTTPError as err:
    print(err.code, err.read().decode())
