# The harness itself in an image. It drives the host's Docker daemon through the mounted socket:
#   make harness-image
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock srl-swe:latest sandbox exec -- uname -a
# BASE_IMAGE defaults to a public Python image; offline, build on the project's base image
# (`--build-arg BASE_IMAGE=srl-base:bookworm`) with wheels fetched on the host into .docker-wheels/.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
LABEL srl-swe="1" srl-swe.kind="harness"
COPY . /src
RUN python3 -m venv /opt/srl \
 && if [ -d /src/.docker-wheels ] && ls /src/.docker-wheels/*.whl >/dev/null 2>&1; then \
      /opt/srl/bin/pip install --no-index --find-links /src/.docker-wheels srl-swe; \
    else /opt/srl/bin/pip install /src; fi \
 && rm -rf /src /root/.cache
ENV PATH=/opt/srl/bin:$PATH
USER root
ENTRYPOINT ["srl"]
CMD ["--help"]
