# The Sidekiq job of the framework tests. Sidekiq finds Redis through REDIS_URL (its default
# way); nothing else is configured. Each run appends "<tag> <epoch seconds>" to $FW_OUT and
# sets fwjob:<tag> through Sidekiq's own Redis connection (so through the proxy).
require "sidekiq"

class FwJob
  include Sidekiq::Worker

  def perform(tag)
    Sidekiq.redis { |conn| conn.set("fwjob:#{tag}", "done-#{tag}") }
    File.open(ENV.fetch("FW_OUT"), "a") { |f| f.puts("#{tag} #{Time.now.to_f}") }
  end
end
