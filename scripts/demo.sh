#!/usr/bin/env bash
echo "demo: the connector is not built yet; this will start Prosody, the connector and an echo bot."
