-- Argo CD health check for rerank.dev/RerankPipeline
-- (argocd-cm key: resource.customizations.health.rerank.dev_RerankPipeline).
--
-- Argo CD has no built-in health for custom resources: without this script a pipeline counts as
-- Healthy as soon as it exists. The operator writes status.observedGeneration and conditions
-- (Ready, Progressing, Reconciling, Degraded, Stalled, Probed, Published); this maps them to
-- Healthy / Progressing / Degraded / Suspended. Plain Lua 5.1 (Argo CD runs gopher-lua).

local hs = {}

local function condition(conditions, type_)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if reason ~= "" then
    return reason
  end
  if message ~= "" then
    return message
  end
  return fallback
end

-- Reasons of Ready=False that mean "broken until someone acts", not "still getting there".
local failing = {
  InvalidSpec = true,
  ApplyRejected = true,
  ContainerFailing = true,
}

local metadata = obj.metadata or {}

if metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Terminating"
  return hs
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = metadata.generation
if generation ~= nil then
  local observed = status.observedGeneration
  if observed == nil or observed < generation then
    hs.status = "Progressing"
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    return hs
  end
end

local conditions = status.conditions
-- Either one True means Degraded; when both are, Stalled's reason and message are shown.
for _, type_ in ipairs({"Stalled", "Degraded"}) do
  local c = condition(conditions, type_)
  if c ~= nil and c.status == "True" then
    hs.status = "Degraded"
    hs.message = describe(c, type_)
    return hs
  end
end

local ready = condition(conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

-- A condition written for an older generation says nothing about the current spec.
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to evaluate generation " .. tostring(generation)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

if ready.reason ~= nil and failing[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
  return hs
end

if ready.reason == "ScaledToZero" then
  hs.status = "Suspended"
  hs.message = describe(ready, "Scaled to zero")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Not ready yet")
return hs
